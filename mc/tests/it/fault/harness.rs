//! The fault harness: one `mc serve` and several `store-node` processes on loopback, each
//! started with failpoints that stop it at the boundaries of every step (before the step is
//! sent, after the store replied) until the harness lets it go — so a fault lands exactly
//! where a case wants it: kill -9 of the MC or of a store, SIGSTOP of a store for longer than
//! the step's deadline, or the MC cut off from every store. A writer puts and reads keys
//! through the MC's routes meanwhile, as a SQL engine would, and records a history for the
//! linearizability checker. After each case the invariants are checked on the real cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;

use super::linearizable::{Kind, Op};
use crate::common::{free_addr, jobs};

/// A process the harness can kill, stop, resume and restart in place (same address, same
/// data); its stderr (errors only, `FAULT_RUST_LOG=info` for more) goes to a file in the data
/// dir (`FAULT_KEEP=1` keeps the dir).
pub type Proc = testkit::Proc;

/// What a case does when its step reaches its boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillMc,
    /// kill -9 of this store, restarted a little later.
    KillStore(u64),
    /// SIGSTOP of this store for longer than a step's deadline, then SIGCONT.
    StopStore(u64),
    /// The MC cannot reach any store for a while.
    CutMc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    /// The step is persisted as dispatched and not sent yet.
    Dispatched,
    /// The store ran the step; its outcome is not persisted yet.
    Replied,
}

impl Boundary {
    fn point(self) -> &'static str {
        match self {
            Boundary::Dispatched => "mc.step.dispatched",
            Boundary::Replied => "mc.step.replied",
        }
    }
}

/// One fault at one step boundary of one job.
#[derive(Clone, Copy, Debug)]
pub struct Trigger {
    pub job: u64,
    /// Forward steps are 1..=n, as the job numbers them.
    pub step: u32,
    pub boundary: Boundary,
    pub fault: Fault,
}

pub struct Cluster {
    /// Every process's data, removed with the cluster.
    _dir: tempfile::TempDir,
    pub mc: Arc<Mutex<Proc>>,
    pub stores: Arc<Mutex<BTreeMap<u64, Proc>>>,
    rendezvous: PathBuf,
    cut: PathBuf,
    /// The trigger armed now, and whether it fired.
    armed: Arc<Mutex<Option<(Trigger, bool)>>>,
    controller: tokio::task::JoinHandle<()>,
}

/// How long a stopped store stays stopped: longer than the shortest step deadline (5 s).
pub const STOP_MS: u64 = 6_500;

impl Cluster {
    /// One MC and `n` stores, the MC stopping at every step boundary for the harness.
    pub async fn start(n: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os("FAULT_KEEP").is_some() {
            eprintln!("fault cluster in {}", dir.path().display());
        }
        let rendezvous = dir.path().join("rendezvous");
        std::fs::create_dir_all(&rendezvous).unwrap();
        let cut = dir.path().join("cut");
        let mc_exe = PathBuf::from(env!("CARGO_BIN_EXE_mc"));
        let store_exe = mc_exe.with_file_name("store-node");
        assert!(
            store_exe.exists(),
            "{} is missing: cargo test --workspace builds it",
            store_exe.display()
        );
        let mc_addr = free_addr();
        let failpoints = format!(
            "mc.step.dispatched=rendezvous({r});mc.step.replied=rendezvous({r});mc.executor.cut=error_while({c})",
            r = rendezvous.display(),
            c = cut.display()
        );
        let mc_args: Vec<String> = [
            "serve",
            "--id",
            "1",
            "--listen",
            &mc_addr,
            "--store-heartbeat-ms",
            "100",
            "--rg-heartbeat-ms",
            "100",
            "--disconnected-after-ms",
            "3000",
            // Long enough that no case's fault makes a store Down and repaired around.
            "--down-after-ms",
            "600000",
            "--ddl-wait-ms",
            "30000",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.path().join("mc").display().to_string()])
        .chain(
            store_node::security::pki::TestPki::shared()
                .flags(&store_node::security::Identity::Mc(1)),
        )
        .collect();
        let mc = Proc::new(mc_exe, mc_addr.clone(), mc_args)
            .stderr(testkit::Stderr::File(dir.path().join("mc.log")))
            .log_from("FAULT_RUST_LOG")
            .env("MC_FAILPOINTS", failpoints)
            .started();
        jobs(&mc_addr).await;
        let mut stores = BTreeMap::new();
        for id in 1..=n {
            let addr = free_addr();
            let args = [
                store_node::security::pki::TestPki::shared()
                    .flags(&store_node::security::Identity::Store(id)),
                vec![
                    "--store-id".into(),
                    id.to_string(),
                    "--listen".into(),
                    addr.clone(),
                    "--mc".into(),
                    mc_addr.clone(),
                    "--store-heartbeat-ms".into(),
                    "100".into(),
                    "--rg-heartbeat-ms".into(),
                    "100".into(),
                    "--raft-heartbeat-ms".into(),
                    "100".into(),
                    "--labels".into(),
                    format!("zone=z{id},host=h{id}"),
                    "--data-dir".into(),
                    dir.path().join(format!("s{id}")).display().to_string(),
                ],
            ]
            .concat();
            let p = Proc::new(store_exe.clone(), addr.clone(), args)
                .stderr(testkit::Stderr::File(dir.path().join(format!("s{id}.log"))))
                .log_from("FAULT_RUST_LOG")
                .started();
            stores.insert(id, p);
        }
        let mc = Arc::new(Mutex::new(mc));
        let stores = Arc::new(Mutex::new(stores));
        let armed = Arc::new(Mutex::new(None));
        let controller = tokio::spawn(control(
            rendezvous.clone(),
            cut.clone(),
            mc.clone(),
            stores.clone(),
            armed.clone(),
        ));
        let cluster = Self {
            _dir: dir,
            mc,
            stores,
            rendezvous,
            cut,
            armed,
            controller,
        };
        cluster.wait_stores_up(n as usize).await;
        // Stray replicas (a store's replica of an RG that left it) are destroyed after 2 s,
        // not 60: a case or a round settles within a minute.
        let mut c = cluster.cluster_client().await;
        c.set_config(SetConfigRequest {
            request_id: "grace".into(),
            values: [("schedule.stray-grace-ms".to_string(), "2000".to_string())].into(),
        })
        .await
        .unwrap();
        cluster
    }

    pub fn mc_addr(&self) -> String {
        self.mc.lock().unwrap().addr.clone()
    }

    pub fn arm(&self, trigger: Trigger) {
        *self.armed.lock().unwrap() = Some((trigger, false));
    }

    /// Injects a fault now (the chaos run's way), healed by itself like an armed one.
    #[allow(dead_code)] // The chaos bench's; the matrix arms triggers instead.
    pub async fn inject_now(&self, fault: Fault) {
        inject(fault, &self.cut, &self.mc, &self.stores).await;
    }

    /// Whether the armed trigger fired; disarms it.
    pub fn disarm(&self) -> bool {
        self.armed
            .lock()
            .unwrap()
            .take()
            .is_some_and(|(_, fired)| fired)
    }

    /// Everything back up: the MC and every store running, the cut healed.
    pub async fn heal(&self) {
        let _ = std::fs::remove_file(&self.cut);
        self.mc.lock().unwrap().heal();
        for p in self.stores.lock().unwrap().values_mut() {
            p.heal();
        }
        // The MC answers; whether every store is Up again is for `settled` to say.
        jobs(&self.mc_addr()).await;
    }

    pub async fn wait_stores_up(&self, n: usize) {
        crate::common::wait_stores_up(&self.mc_addr(), n).await;
    }

    pub async fn cluster_client(&self) -> ClusterServiceClient<tonic::transport::Channel> {
        store_node::security::pki::admin_connect(format!("http://{}", self.mc_addr()))
            .await
            .map(ClusterServiceClient::new)
            .unwrap()
    }

    pub async fn jobs(&self) -> JobServiceClient<tonic::transport::Channel> {
        jobs(&self.mc_addr()).await
    }

    pub async fn meta(&self) -> MetaServiceClient<tonic::transport::Channel> {
        store_node::security::pki::admin_connect(format!("http://{}", self.mc_addr()))
            .await
            .map(MetaServiceClient::new)
            .unwrap()
    }

    pub fn store_addr(&self, id: u64) -> String {
        self.stores.lock().unwrap()[&id].addr.clone()
    }

    /// The error lines the processes logged (for a failing case's report), the last `n`.
    pub fn errors(&self, n: usize) -> String {
        let path = |p: &Proc| p.log_path().map(|l| l.to_path_buf()).unwrap_or_default();
        let mut logs: Vec<PathBuf> = vec![path(&self.mc.lock().unwrap())];
        logs.extend(self.stores.lock().unwrap().values().map(path));
        let mut out = Vec::new();
        for log in logs {
            let name = log.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
            for l in lines.iter().rev().take(n).rev() {
                out.push(format!("{name}: {l}"));
            }
        }
        out.join("\n")
    }

    pub fn store_ids(&self) -> Vec<u64> {
        self.stores.lock().unwrap().keys().copied().collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.controller.abort();
        let _ = &self.rendezvous;
        if std::env::var_os("FAULT_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
            let _ = dir.keep();
        }
    }
}

/// Lets every step boundary go at once, except the armed one: there it injects the fault
/// first. Runs until the cluster is dropped.
async fn control(
    dir: PathBuf,
    cut: PathBuf,
    mc: Arc<Mutex<Proc>>,
    stores: Arc<Mutex<BTreeMap<u64, Proc>>>,
    armed: Arc<Mutex<Option<(Trigger, bool)>>>,
) {
    loop {
        let mut hits: Vec<(String, String)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let rest = name.strip_prefix("hit.")?.to_string();
                Some((rest, std::fs::read_to_string(e.path()).unwrap_or_default()))
            })
            .collect();
        hits.sort();
        for (id, text) in hits {
            let _ = std::fs::remove_file(dir.join(format!("hit.{id}")));
            let fire = {
                let mut armed = armed.lock().unwrap();
                match armed.as_mut() {
                    Some((t, fired)) if !*fired && matches(t, &text) => {
                        *fired = true;
                        Some(*t)
                    }
                    _ => None,
                }
            };
            if let Some(t) = fire {
                inject(t.fault, &cut, &mc, &stores).await;
            }
            let _ = std::fs::write(dir.join(format!("go.{id}")), b"");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn matches(t: &Trigger, text: &str) -> bool {
    text == format!("{} job={} step={}", t.boundary.point(), t.job, t.step)
}

async fn inject(
    fault: Fault,
    cut: &Path,
    mc: &Arc<Mutex<Proc>>,
    stores: &Arc<Mutex<BTreeMap<u64, Proc>>>,
) {
    match fault {
        Fault::KillMc => {
            mc.lock().unwrap().kill9();
            let mc = mc.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                mc.lock().unwrap().heal();
            });
        }
        Fault::KillStore(s) => {
            if let Some(p) = stores.lock().unwrap().get_mut(&s) {
                p.kill9();
            }
            let stores = stores.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                if let Some(p) = stores.lock().unwrap().get_mut(&s) {
                    p.heal();
                }
            });
        }
        Fault::StopStore(s) => {
            if let Some(p) = stores.lock().unwrap().get_mut(&s) {
                p.signal("STOP");
            }
            let stores = stores.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(STOP_MS)).await;
                if let Some(p) = stores.lock().unwrap().get_mut(&s) {
                    p.heal();
                }
            });
        }
        Fault::CutMc => {
            let _ = std::fs::write(cut, b"");
            let cut = cut.to_path_buf();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(3_000)).await;
                let _ = std::fs::remove_file(cut);
            });
        }
    }
}

/// Puts and gets keys of one object through the MC's routes, as a SQL engine's client would:
/// to each region's leader, following NotLeader hints and refreshing routes on epoch changes.
pub struct Writer {
    history: Arc<Mutex<Vec<Op>>>,
    /// The longest stretch, while the writer was trying, between two answered operations.
    longest_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Every stretch of 50 ms or more without an answer, (from, to) in microseconds since
    /// `started`: what a fault cost is the longest of those it overlaps (the chaos run's
    /// figure per fault kind).
    #[allow(dead_code)]
    stalls: Arc<Mutex<Vec<(u64, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    started: Instant,
}

/// Routes of one object: (region, epoch version, range, leader or any replica address).
type Routes = Vec<(u64, u64, Vec<u8>, Vec<u8>, Vec<String>)>;

async fn routes(mc: &str, object: &str) -> Routes {
    let Ok(mut meta) = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(MetaServiceClient::new)
    else {
        return vec![];
    };
    let Ok(reply) = meta
        .get_routes(GetRoutesRequest {
            target: Some(get_routes_request::Target::Object(ObjectRef {
                target: Some(object_ref::Target::Path(object.into())),
            })),
        })
        .await
    else {
        return vec![];
    };
    reply
        .into_inner()
        .routes
        .into_iter()
        .filter_map(|r| {
            let region = r.region?;
            let range = region.range.clone()?;
            let mut addrs = vec![];
            if !r.leader_address.is_empty() {
                addrs.push(r.leader_address.clone());
            }
            addrs.extend(r.store_addresses.values().cloned());
            Some((
                region.id,
                region.epoch.map(|e| e.version).unwrap_or(0),
                range.start,
                range.end,
                addrs,
            ))
        })
        .collect()
}

impl Writer {
    /// Keys `prefix ++ k000…` inside the object's range, written and read at random.
    pub fn start(mc: String, object: String, key_base: Vec<u8>, keys: u32, seed: u64) -> Self {
        /// Below the checker's limit of 128, leaving room for the final reads.
        const MAX_OPS_PER_KEY: usize = 120;
        let history = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let longest_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let (h, s, longest, gaps) = (
            history.clone(),
            stop.clone(),
            longest_ms.clone(),
            stalls.clone(),
        );
        let task = tokio::spawn(async move {
            let mut last_answer = Instant::now();
            let mut rng = seed | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut table = routes(&mc, &object).await;
            let mut seq = 0u64;
            // The checker searches each key's history exhaustively: a key stops being used
            // once its history is this long (a long settle would otherwise outgrow it).
            let mut per_key = vec![0usize; keys as usize];
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let i = next() % u64::from(keys);
                if per_key[i as usize] >= MAX_OPS_PER_KEY {
                    if per_key.iter().all(|n| *n >= MAX_OPS_PER_KEY) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
                per_key[i as usize] += 1;
                let mut key = key_base.clone();
                key.extend_from_slice(format!("k{i:04}").as_bytes());
                let write = next() % 3 != 0;
                seq += 1;
                let value = format!("v{seq}").into_bytes();
                let call = started.elapsed().as_micros() as u64;
                let result = op(&mc, &object, &mut table, &key, write.then_some(&value)).await;
                let ret = started.elapsed().as_micros() as u64;
                let waited = last_answer.elapsed().as_millis() as u64;
                longest.fetch_max(waited, std::sync::atomic::Ordering::Relaxed);
                if result.is_ok() {
                    if waited >= 50 {
                        let from = last_answer.duration_since(started).as_micros() as u64;
                        gaps.lock().unwrap().push((from, ret));
                    }
                    last_answer = Instant::now();
                }
                let entry = match (write, result) {
                    (true, Ok(_)) => Some(Op {
                        key,
                        kind: Kind::Put(value),
                        call,
                        ret: Some(ret),
                    }),
                    (true, Err(())) => Some(Op {
                        key,
                        kind: Kind::Put(value),
                        call,
                        ret: None,
                    }),
                    (false, Ok(read)) => Some(Op {
                        key,
                        kind: Kind::Get(read),
                        call,
                        ret: Some(ret),
                    }),
                    (false, Err(())) => None,
                };
                if let Some(e) = entry {
                    h.lock().unwrap().push(e);
                }
            }
        });
        Self {
            history,
            longest_ms,
            stalls,
            stop,
            task: Some(task),
            started,
        }
    }

    /// The longest the client went without an answer while it was trying (not while every
    /// key's history was full and it waited to be stopped).
    pub fn longest_unanswered_ms(&self) -> u64 {
        self.longest_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The longest stretch without an answer that overlaps `[from, to)`: what a fault
    /// injected at `from` (and in effect until `to`) cost the client.
    #[allow(dead_code)]
    pub fn longest_unanswered_between_ms(&self, from: Instant, to: Instant) -> u64 {
        let at = |t: Instant| t.saturating_duration_since(self.started).as_micros() as u64;
        let (from, to) = (at(from), at(to));
        self.stalls
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, b)| *b > from && *a < to)
            .map(|(a, b)| (b - a) / 1000)
            .max()
            .unwrap_or(0)
    }

    /// Stops writing, reads every key once more (retrying until it answers), and returns the
    /// history with those final reads, and how many puts were acknowledged.
    pub async fn finish(
        mut self,
        mc: &str,
        object: &str,
        key_base: &[u8],
        keys: u32,
    ) -> (Vec<Op>, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let mut table = routes(mc, object).await;
        for i in 0..keys {
            let mut key = key_base.to_vec();
            key.extend_from_slice(format!("k{i:04}").as_bytes());
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let call = self.started.elapsed().as_micros() as u64;
                if let Ok(v) = op(mc, object, &mut table, &key, None).await {
                    let ret = self.started.elapsed().as_micros() as u64;
                    self.history.lock().unwrap().push(Op {
                        key: key.clone(),
                        kind: Kind::Get(v),
                        call,
                        ret: Some(ret),
                    });
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "key {i} unreadable after the case"
                );
            }
        }
        let history = self.history.lock().unwrap().clone();
        let acked = history
            .iter()
            .filter(|o| matches!(o.kind, Kind::Put(_)) && o.ret.is_some())
            .count();
        (history, acked)
    }
}

/// One put (`value`) or get through the routes, retried for up to 3 s. `Err` when it never
/// got a definite answer (for a put: it may or may not have landed).
async fn op(
    mc: &str,
    object: &str,
    table: &mut Routes,
    key: &[u8],
    value: Option<&Vec<u8>>,
) -> Result<Option<Vec<u8>>, ()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut hint: Option<String> = None;
    while Instant::now() < deadline {
        let route = table
            .iter()
            .find(|(_, _, s, e, _)| key >= s.as_slice() && (e.is_empty() || key < e.as_slice()))
            .cloned();
        let Some((region, version, _, _, addrs)) = route else {
            *table = routes(mc, object).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let target = hint.take().or_else(|| addrs.first().cloned());
        let Some(target) = target else {
            *table = routes(mc, object).await;
            continue;
        };
        let context = Some(RegionContext {
            region_id: region,
            epoch: Some(RegionEpoch {
                version,
                conf_ver: 0,
            }),
        });
        // The writer is a client, as a SQL engine is: a user's certificate.
        let channel = store_node::security::pki::TestPki::shared()
            .admin()
            .endpoint(&target)
            .unwrap()
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(1_500))
            .connect()
            .await;
        let Ok(channel) = channel else {
            *table = routes(mc, object).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut kv = KvServiceClient::new(channel);
        let error = match value {
            Some(v) => match kv
                .put(PutRequest {
                    context,
                    key: key.to_vec(),
                    value: v.clone(),
                })
                .await
            {
                Ok(r) => match r.into_inner().error {
                    None => return Ok(None),
                    Some(e) => Some(e),
                },
                Err(_) => None,
            },
            None => match kv
                .get(GetRequest {
                    context,
                    key: key.to_vec(),
                })
                .await
            {
                Ok(r) => {
                    let r = r.into_inner();
                    match r.error {
                        None => return Ok(r.found.then_some(r.value)),
                        Some(e) => Some(e),
                    }
                }
                Err(_) => None,
            },
        };
        match error.and_then(|e| e.detail) {
            Some(error::Detail::NotLeader(n)) if !n.leader_address.is_empty() => {
                hint = Some(n.leader_address);
            }
            _ => {
                *table = routes(mc, object).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
    Err(())
}

/// The invariants every case ends with, once the cluster has settled: every RG has three
/// voters and a leader; the object's regions tile its key range; no store holds a replica of
/// an RG that does not list it; no step ran twice on a store. Waits (up to a minute) for the
/// schedulers to repair what the case left, then reports what still does not hold.
pub async fn settled(cluster: &Cluster, object: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = true;
    loop {
        let problems = problems(cluster, object).await;
        if problems.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut first) {
            println!("  settling: {}", problems.join("; "));
        }
        if Instant::now() > deadline {
            return Err(problems.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn problems(cluster: &Cluster, object: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = cluster.cluster_client().await;
    let Ok(stores) = c.list_stores(ListStoresRequest::default()).await else {
        return vec!["ListStores failed".into()];
    };
    for s in stores.into_inner().stores {
        if s.state != StoreState::Up as i32 {
            out.push(format!("store {} is {:?}", s.id, s.state()));
        }
    }
    let Ok(rgs) = c.list_rgs(ListRgsRequest::default()).await else {
        return vec!["ListRgs failed".into()];
    };
    let rgs = rgs.into_inner().rgs;
    let mut members: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for rg in &rgs {
        let voters = rg
            .replicas
            .iter()
            .filter(|r| r.role == ReplicaRole::Voter as i32)
            .count();
        if voters != 3 || rg.replicas.len() != 3 {
            out.push(format!(
                "RG {} has {} replicas ({voters} voters)",
                rg.id,
                rg.replicas.len()
            ));
        }
        if rg.leader_store_id == 0 {
            out.push(format!("RG {} has no leader", rg.id));
        }
        members.insert(rg.id, rg.replicas.iter().map(|r| r.store_id).collect());
    }
    // The object's regions tile its range.
    let mut meta = cluster.meta().await;
    let tree = meta
        .get_object_tree(GetObjectTreeRequest {
            root: Some(ObjectRef {
                target: Some(object_ref::Target::Path(object.into())),
            }),
            max_depth: 1,
        })
        .await;
    let range = tree
        .ok()
        .and_then(|t| t.into_inner().roots.into_iter().next())
        .and_then(|n| n.object)
        .and_then(|o| o.key_range);
    let mut regions: Vec<(Vec<u8>, Vec<u8>)> = routes(&cluster.mc_addr(), object)
        .await
        .into_iter()
        .map(|(_, _, s, e, _)| (s, e))
        .collect();
    regions.sort();
    // Routes of an object include its children's (indexes): keep those inside its own range.
    if let Some(range) = range {
        let own: Vec<_> = regions
            .iter()
            .filter(|(s, _)| *s >= range.start && (range.end.is_empty() || *s < range.end))
            .cloned()
            .collect();
        let mut at = range.start.clone();
        for (s, e) in &own {
            if *s != at {
                out.push(format!("{object}'s regions do not tile its range at {s:?}"));
                break;
            }
            at = e.clone();
        }
        if at != range.end {
            out.push(format!(
                "{object}'s regions end at {at:?}, not {:?}",
                range.end
            ));
        }
    }
    // Stores hold only replicas of RGs that list them; no step ran twice. The test speaks to
    // them as an MC of their cluster.
    let cluster_id = crate::common::members(&cluster.mc_addr()).await.cluster_id;
    for id in cluster.store_ids() {
        let addr = cluster.store_addr(id);
        let Ok(channel) = store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Mc(1))
            .endpoint(&addr)
            .unwrap()
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
        else {
            out.push(format!("store {id} unreachable"));
            continue;
        };
        let mut request = tonic::Request::new(GetStoreStatusRequest::default());
        store_node::security::tag(&mut request, cluster_id);
        let Ok(status) = StoreServiceClient::new(channel)
            .get_store_status(request)
            .await
        else {
            out.push(format!("store {id} does not answer"));
            continue;
        };
        let status = status.into_inner();
        for r in &status.replicas {
            if !members.get(&r.rg_id).is_some_and(|m| m.contains(&id)) {
                let own: Vec<u64> = r.members.iter().map(|m| m.store_id).collect();
                out.push(format!(
                    "store {id} holds a replica of RG {} that is not a member (the MC says \
                     {:?}; the replica says {own:?}, leader {}, term {}, applied {})",
                    r.rg_id,
                    members.get(&r.rg_id),
                    r.leader_store_id,
                    r.term,
                    r.applied_index
                ));
            }
        }
        for twice in &status.repeated_steps {
            out.push(format!(
                "store {id} ran step {} of job {} {} times",
                twice.step_seq, twice.job_id, twice.runs
            ));
        }
    }
    out
}

/// Waits for the job to end; its final record.
pub async fn job_end(cluster: &Cluster, id: u64, limit: Duration) -> Job {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        if let Ok(mut c) =
            store_node::security::pki::admin_connect(format!("http://{}", cluster.mc_addr()))
                .await
                .map(JobServiceClient::new)
            && let Ok(j) = c
                .get_job(GetJobRequest {
                    job_id: id,
                    include_records: false,
                })
                .await
            && let Some(job) = j.into_inner().job
        {
            if [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
                .iter()
                .any(|s| *s as i32 == job.state)
            {
                return job;
            }
            last = Some(job);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} stuck past {limit:?}: {last:#?}\nerrors logged:\n{}",
            cluster.errors(10)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
