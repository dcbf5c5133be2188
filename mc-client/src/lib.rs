//! A client as a SQL engine would use the MC: routes from GetRoutes, kept fresh by a
//! WatchRoutes stream, and KV calls sent to the leader a route names. A stale route is
//! repaired from what the store answers — NotLeader names the leader, EpochMismatch carries
//! the regions that now cover the key — and anything else (an election, a store restarting)
//! is retried with exponential backoff until the call's deadline. Each pause is jittered (so a
//! thousand clients that lost the same leader do not come back in step) and never shorter than
//! the `retry_after_ms` the MC or the store asked for. Tests and benches use it, so they
//! measure what an engine would see.

pub mod leader;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use infra::security::Security;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::{self as pb, error, get_routes_request};
use tonic::transport::Channel;

/// Why a client call failed, after its retries.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The MC or a store refused the call for good (bad input, not found).
    #[error("refused: {0}")]
    Refused(String),
    /// Still failing when the deadline came: the last error seen.
    #[error("gave up after {elapsed_ms} ms: {last}")]
    Timeout { elapsed_ms: u64, last: String },
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Routes by start key, at a route revision.
#[derive(Debug, Default)]
pub struct RouteCache {
    by_start: BTreeMap<Vec<u8>, pb::Route>,
    start_of: HashMap<u64, Vec<u8>>,
    revision: u64,
}

fn start_of(route: &pb::Route) -> Vec<u8> {
    route
        .region
        .as_ref()
        .and_then(|r| r.range.as_ref())
        .map(|r| r.start.clone())
        .unwrap_or_default()
}

fn region_id(route: &pb::Route) -> u64 {
    route.region.as_ref().map(|r| r.id).unwrap_or(0)
}

impl RouteCache {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn len(&self) -> usize {
        self.start_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start_of.is_empty()
    }

    /// The cached route whose range holds `key`.
    pub fn locate(&self, key: &[u8]) -> Option<&pb::Route> {
        let (_, route) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let range = route.region.as_ref()?.range.as_ref()?;
        (range.end.is_empty() || key < range.end.as_slice()).then_some(route)
    }

    pub fn route_of(&self, region: u64) -> Option<&pb::Route> {
        self.by_start.get(self.start_of.get(&region)?)
    }

    /// Replaces the region's route (a region's start moves on a merge of its left neighbour
    /// into it, so the old entry goes first).
    pub fn upsert(&mut self, route: pb::Route) {
        let id = region_id(&route);
        self.remove(id);
        let start = start_of(&route);
        // A route whose start another region had (a split's left half, a merge) replaces it.
        if let Some(old) = self.by_start.insert(start.clone(), route) {
            let old_id = region_id(&old);
            if old_id != id {
                self.start_of.remove(&old_id);
            }
        }
        self.start_of.insert(id, start);
    }

    pub fn remove(&mut self, region: u64) {
        if let Some(start) = self.start_of.remove(&region) {
            self.by_start.remove(&start);
        }
    }

    /// Applies one WatchRoutes message.
    pub fn apply(&mut self, message: pb::WatchRoutesResponse) {
        if message.reset {
            self.by_start.clear();
            self.start_of.clear();
            // A reset cut off before its last message starts over as a reset.
            self.revision = 0;
        }
        for route in message.routes {
            self.upsert(route);
        }
        for id in message.removed_region_ids {
            self.remove(id);
        }
        if message.complete {
            self.revision = message.revision;
        }
    }
}

/// Exponential backoff from 5 ms to 500 ms, with the deadline of the call.
struct Backoff {
    next: Duration,
    deadline: Instant,
    started: Instant,
    /// xorshift state: each pause is drawn from [next/2, next].
    seed: u64,
}

impl Backoff {
    fn new(timeout: Duration) -> Self {
        // Distinct per call and process; nothing here needs to be reproduced exactly, only
        // spread.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::seeded(
            timeout,
            (u64::from(std::process::id()) << 32) ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )
    }

    fn seeded(timeout: Duration, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            next: Duration::from_millis(5),
            deadline: now + timeout,
            started: now,
            seed: seed | 1,
        }
    }

    /// The next pause: half the backoff plus a random part of the other half, and at least
    /// what the server asked for.
    fn pause(&mut self, retry_after: Option<Duration>) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.next / 2;
        let jitter = Duration::from_nanos(self.seed % (half.as_nanos() as u64).max(1));
        let pause = (half + jitter).max(retry_after.unwrap_or_default());
        self.next = (self.next * 2).min(Duration::from_millis(500));
        pause
    }

    /// Sleeps before the next try, or gives up with `last`.
    async fn wait(&mut self, last: String) -> Result<()> {
        self.wait_at_least(last, None).await
    }

    /// The same, waiting at least `retry_after` (what an Unavailable answer asked for).
    async fn wait_at_least(&mut self, last: String, retry_after: Option<Duration>) -> Result<()> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ClientError::Timeout {
                elapsed_ms: self.started.elapsed().as_millis() as u64,
                last,
            });
        }
        let pause = self.pause(retry_after);
        tokio::time::sleep(pause.min(self.deadline - now)).await;
        Ok(())
    }
}

/// The pause an Unavailable answer asks for (`mc.v1.Unavailable.retry_after_ms`), if any.
fn retry_after(e: &pb::Error) -> Option<Duration> {
    match &e.detail {
        Some(error::Detail::Unavailable(u)) if u.retry_after_ms > 0 => {
            Some(Duration::from_millis(u64::from(u.retry_after_ms)))
        }
        _ => None,
    }
}

/// What a store's answer means for the route that sent it.
enum Verdict<T> {
    Done(T),
    /// Try again now, the cache repaired.
    Again,
    /// Try again after a pause (at least the one the answer asked for).
    Later(String, Option<Duration>),
    Refused(String),
}

pub struct Client {
    security: Security,
    meta: MetaServiceClient<Channel>,
    cache: Arc<RwLock<RouteCache>>,
    channels: std::sync::Mutex<HashMap<String, Channel>>,
    /// How long one call keeps trying.
    pub timeout: Duration,
}

impl Client {
    /// Connects to an MC (any of them: followers forward) as `security`'s identity.
    pub async fn connect(mc: &str, security: Security) -> Result<Self> {
        let channel = security
            .connect(mc)
            .await
            .map_err(|e| ClientError::Refused(format!("connect to MC {mc}: {e}")))?;
        Ok(Self {
            security,
            meta: MetaServiceClient::new(channel),
            cache: Arc::default(),
            channels: Default::default(),
            timeout: Duration::from_secs(30),
        })
    }

    pub fn meta(&self) -> MetaServiceClient<Channel> {
        self.meta.clone()
    }

    pub fn cache(&self) -> Arc<RwLock<RouteCache>> {
        self.cache.clone()
    }

    /// Follows WatchRoutes into the cache from its revision until the returned task is
    /// aborted, watching again (from where it was) when the stream ends.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let mut meta = self.meta.clone();
        let cache = self.cache.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(5);
            loop {
                let from = cache.read().expect("route cache").revision();
                if let Ok(reply) = meta
                    .watch_routes(pb::WatchRoutesRequest {
                        from_revision: from,
                    })
                    .await
                {
                    let mut stream = reply.into_inner();
                    while let Ok(Some(message)) = stream.message().await {
                        cache.write().expect("route cache").apply(message);
                        pause = Duration::from_millis(5);
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        })
    }

    /// Routes of an object and everything below it, into the cache.
    pub async fn load_object(&self, object: u64) -> Result<Vec<pb::Route>> {
        let target = get_routes_request::Target::Object(pb::ObjectRef {
            target: Some(pb::object_ref::Target::Id(object)),
        });
        self.get_routes(target).await
    }

    async fn get_routes(&self, target: get_routes_request::Target) -> Result<Vec<pb::Route>> {
        let mut backoff = Backoff::new(self.timeout);
        loop {
            let call = self
                .meta
                .clone()
                .get_routes(pb::GetRoutesRequest {
                    target: Some(target.clone()),
                })
                .await;
            match call {
                Ok(reply) => {
                    let routes = reply.into_inner().routes;
                    let mut cache = self.cache.write().expect("route cache");
                    for r in &routes {
                        cache.upsert(r.clone());
                    }
                    return Ok(routes);
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    let asked = pb::Error::from_status(&s).as_ref().and_then(retry_after);
                    backoff
                        .wait_at_least(s.message().to_string(), asked)
                        .await?
                }
                Err(s) => return Err(ClientError::Refused(s.message().to_string())),
            }
        }
    }

    /// The route for `key`: cached, else asked of the MC.
    pub async fn route(&self, key: &[u8]) -> Result<pb::Route> {
        if let Some(r) = self.cache.read().expect("route cache").locate(key) {
            return Ok(r.clone());
        }
        let routes = self
            .get_routes(get_routes_request::Target::Key(key.to_vec()))
            .await?;
        routes
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Refused(format!("no region for key {key:02x?}")))
    }

    fn channel(&self, addr: &str) -> Result<Channel> {
        let mut channels = self.channels.lock().expect("client channels");
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let channel = self
            .security
            .endpoint(addr)
            .map_err(|e| ClientError::Refused(format!("store address {addr}: {e}")))?
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// What a store's error says about the route: a named leader or the current regions
    /// are put in the cache and the call goes again at once.
    fn judge<T>(&self, route: &pb::Route, e: Option<pb::Error>, ok: T) -> Verdict<T> {
        let Some(e) = e else {
            return Verdict::Done(ok);
        };
        let mut cache = self.cache.write().expect("route cache");
        match e.detail {
            Some(error::Detail::NotLeader(n)) if n.leader_id != 0 => {
                let mut fixed = route.clone();
                fixed.leader_store_id = n.leader_id;
                fixed.leader_address = if n.leader_address.is_empty() {
                    route
                        .store_addresses
                        .get(&n.leader_id)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    n.leader_address
                };
                cache.upsert(fixed);
                Verdict::Again
            }
            Some(error::Detail::EpochMismatch(m)) if !m.current_regions.is_empty() => {
                cache.remove(region_id(route));
                for region in m.current_regions {
                    let mut fixed = route.clone();
                    fixed.region = Some(region);
                    cache.upsert(fixed);
                }
                Verdict::Again
            }
            Some(error::Detail::InvalidArgument(_)) => Verdict::Refused(e.message),
            // An unknown leader, a region gone or moved: ask the MC again after a pause.
            _ => {
                cache.remove(region_id(route));
                let asked = retry_after(&e);
                Verdict::Later(e.message, asked)
            }
        }
    }

    fn context(route: &pb::Route) -> Option<pb::RegionContext> {
        let region = route.region.as_ref()?;
        Some(pb::RegionContext {
            region_id: region.id,
            epoch: region.epoch,
        })
    }

    fn leader_address(route: &pb::Route) -> Option<String> {
        (route.leader_store_id != 0)
            .then(|| {
                if route.leader_address.is_empty() {
                    route.store_addresses.get(&route.leader_store_id).cloned()
                } else {
                    Some(route.leader_address.clone())
                }
            })
            .flatten()
    }

    /// Runs `call` against the leader of `key`'s region until it is done or refused.
    async fn with_leader<T, F, Fut>(&self, key: &[u8], mut call: F) -> Result<T>
    where
        F: FnMut(KvServiceClient<Channel>, Option<pb::RegionContext>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(Option<pb::Error>, T), tonic::Status>>,
    {
        let mut backoff = Backoff::new(self.timeout);
        loop {
            let route = self.route(key).await?;
            let Some(addr) = Self::leader_address(&route) else {
                self.cache
                    .write()
                    .expect("route cache")
                    .remove(region_id(&route));
                backoff.wait("no leader known".into()).await?;
                continue;
            };
            let kv = KvServiceClient::new(self.channel(&addr)?);
            let verdict = match call(kv, Self::context(&route)).await {
                Ok((e, out)) => self.judge(&route, e, out),
                // Who the caller is will not change by asking again.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                    ) =>
                {
                    Verdict::Refused(format!("{addr}: {}", s.message()))
                }
                Err(s) => {
                    self.cache
                        .write()
                        .expect("route cache")
                        .remove(region_id(&route));
                    let asked = pb::Error::from_status(&s).as_ref().and_then(retry_after);
                    Verdict::Later(format!("{addr}: {}", s.message()), asked)
                }
            };
            match verdict {
                Verdict::Done(out) => return Ok(out),
                Verdict::Again => {}
                Verdict::Later(last, asked) => backoff.wait_at_least(last, asked).await?,
                Verdict::Refused(why) => return Err(ClientError::Refused(why)),
            }
        }
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.with_leader(key, |mut kv, context| {
            let req = pb::PutRequest {
                context,
                key: key.to_vec(),
                value: value.to_vec(),
            };
            async move { kv.put(req).await.map(|r| (r.into_inner().error, ())) }
        })
        .await
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.with_leader(key, |mut kv, context| {
            let req = pb::DeleteRequest {
                context,
                key: key.to_vec(),
            };
            async move { kv.delete(req).await.map(|r| (r.into_inner().error, ())) }
        })
        .await
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_leader(key, |mut kv, context| {
            let req = pb::GetRequest {
                context,
                key: key.to_vec(),
            };
            async move {
                kv.get(req).await.map(|r| {
                    let r = r.into_inner();
                    (r.error, r.found.then_some(r.value))
                })
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered_within_half_to_all_of_the_backoff_and_grow_to_500_ms() {
        let mut b = Backoff::seeded(Duration::from_secs(60), 7);
        let mut backoff = Duration::from_millis(5);
        let mut pauses = Vec::new();
        for _ in 0..12 {
            let p = b.pause(None);
            assert!(
                p >= backoff / 2 && p <= backoff,
                "{p:?} outside [{backoff:?}/2, {backoff:?}]"
            );
            pauses.push(p);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        // Two clients that failed together do not retry together.
        let mut other = Backoff::seeded(Duration::from_secs(60), 8);
        let theirs: Vec<Duration> = (0..12).map(|_| other.pause(None)).collect();
        assert_ne!(pauses, theirs);
    }

    #[test]
    fn a_pause_is_never_shorter_than_the_servers_retry_after() {
        let mut b = Backoff::seeded(Duration::from_secs(60), 7);
        assert_eq!(
            b.pause(Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        // What the MC puts on the wire reaches the backoff.
        let status = pb::Error {
            code: pb::ErrorCode::Unavailable as i32,
            message: "no leader".into(),
            detail: Some(error::Detail::Unavailable(pb::Unavailable {
                retry_after_ms: 750,
                ..Default::default()
            })),
        }
        .into_status();
        let asked = pb::Error::from_status(&status)
            .as_ref()
            .and_then(retry_after);
        assert_eq!(asked, Some(Duration::from_millis(750)));
        assert!(b.pause(asked) >= Duration::from_millis(750));
        // No detail, no floor.
        let plain = pb::Error {
            code: pb::ErrorCode::Unavailable as i32,
            message: "x".into(),
            detail: None,
        };
        assert_eq!(retry_after(&plain), None);
    }

    fn route(id: u64, start: &[u8], end: &[u8], leader: u64) -> pb::Route {
        pb::Route {
            region: Some(pb::Region {
                id,
                range: Some(pb::KeyRange {
                    start: start.to_vec(),
                    end: end.to_vec(),
                }),
                ..Default::default()
            }),
            leader_store_id: leader,
            ..Default::default()
        }
    }

    #[test]
    fn the_cache_follows_splits_merges_and_resets() {
        let mut c = RouteCache::default();
        c.apply(pb::WatchRoutesResponse {
            revision: 3,
            reset: true,
            routes: vec![route(1, b"a", b"m", 1), route(2, b"m", b"", 1)],
            removed_region_ids: vec![],
            complete: true,
        });
        assert_eq!(c.locate(b"b").map(region_id), Some(1));
        assert_eq!(c.locate(b"zz").map(region_id), Some(2));
        assert!(c.locate(b"0").is_none(), "before every region");
        // Region 1 splits at "f": 1 = [a, f), 3 = [f, m).
        c.apply(pb::WatchRoutesResponse {
            revision: 4,
            routes: vec![route(1, b"a", b"f", 1), route(3, b"f", b"m", 2)],
            complete: true,
            ..Default::default()
        });
        assert_eq!(c.locate(b"g").map(region_id), Some(3));
        assert_eq!(c.locate(b"g").unwrap().leader_store_id, 2);
        // 3 merges into 1 (its right neighbour goes): 1 = [a, m).
        c.apply(pb::WatchRoutesResponse {
            revision: 5,
            routes: vec![route(1, b"a", b"m", 1)],
            removed_region_ids: vec![3],
            complete: true,
            ..Default::default()
        });
        assert_eq!(c.locate(b"g").map(region_id), Some(1));
        assert_eq!(c.len(), 2);
        assert_eq!(c.revision(), 5);
        // A reset cut off before its last message leaves the cache at revision 0, so the
        // next watch starts with every route again.
        c.apply(pb::WatchRoutesResponse {
            revision: 9,
            reset: true,
            routes: vec![route(7, b"", b"", 1)],
            complete: false,
            ..Default::default()
        });
        assert_eq!((c.len(), c.revision()), (1, 0));
        assert_eq!(c.locate(b"anything").map(region_id), Some(7));
    }
}
