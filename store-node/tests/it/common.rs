//! A cluster of real `store-node` processes on loopback, and the client calls the tests make
//! the way the MC and SQL engines would: ExecuteStep and KvService over gRPC.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proto::v1::kv_service_client::KvServiceClient;
use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;
use tonic::transport::Channel;

pub const RG: u64 = 1;
pub const REGION: u64 = 1;

pub struct StoreProc {
    pub id: u64,
    pub addr: String,
    pub dir: PathBuf,
    /// The process; its `env` applies from its next (re)start on (failpoints:
    /// `MC_FAILPOINTS`).
    pub proc: testkit::Proc,
}

impl StoreProc {
    pub fn start(id: u64, addr: String, dir: PathBuf, extra: &[&str]) -> Self {
        let mut args: Vec<String> = ["--store-id", &id.to_string(), "--listen", &addr]
            .map(String::from)
            .into();
        args.extend(
            store_node::security::pki::TestPki::shared()
                .flags(&store_node::security::Identity::Store(id)),
        );
        if !extra.contains(&"--raft-heartbeat-ms") {
            args.extend(["--raft-heartbeat-ms", "100"].map(String::from));
        }
        // No MC tells these stores who may write: the test CA's admin may (what
        // `store_node::client` dials as).
        args.extend(["--bootstrap-data-users", "admin", "--data-dir"].map(String::from));
        args.push(dir.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = testkit::Proc::new(env!("CARGO_BIN_EXE_store-node"), addr.clone(), args)
            .stderr(testkit::Stderr::Inherit)
            .log_from("STORE_LOG")
            .started();
        Self {
            id,
            addr,
            dir,
            proc,
        }
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    pub fn restart(&mut self) {
        self.proc.restart();
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_running()
    }

    /// Sends a signal (`STOP`, `CONT`) to the process: a store that hangs, then resumes.
    pub fn signal(&mut self, sig: &str) {
        assert!(self.proc.signal(sig), "kill -{sig} to store {}", self.id);
    }
}

pub use testkit::{free_addr, key};

pub struct Cluster {
    pub stores: Vec<StoreProc>,
    pub tmp: tempfile::TempDir,
    /// Flags every store of the cluster gets, also ones added later.
    extra: Vec<String>,
}

impl Cluster {
    pub async fn start(n: u64) -> Self {
        Self::start_with(n, &[]).await
    }

    pub async fn start_with(n: u64, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let stores = (1..=n)
            .map(|id| StoreProc::start(id, free_addr(), tmp.path().join(format!("s{id}")), extra))
            .collect();
        let cluster = Self {
            stores,
            tmp,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for s in &cluster.stores {
            wait_ready(&s.addr).await;
        }
        cluster
    }

    pub fn store(&mut self, id: u64) -> &mut StoreProc {
        self.stores.iter_mut().find(|s| s.id == id).unwrap()
    }

    pub fn addr(&self, id: u64) -> String {
        self.stores
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .addr
            .clone()
    }

    pub fn add_store(&mut self, id: u64) -> String {
        let addr = free_addr();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let dir = self.tmp.path().join(format!("s{id}"));
        self.stores
            .push(StoreProc::start(id, addr.clone(), dir, &extra));
        addr
    }

    pub fn peer(&self, id: u64) -> ReplicaPeer {
        ReplicaPeer {
            store_id: id,
            address: self.addr(id),
            role: ReplicaRole::Voter as i32,
        }
    }

    /// Creates RG `RG` on the given stores with one region [a, z).
    pub async fn bootstrap_rg(&self, members: &[u64]) {
        let peers: Vec<_> = members.iter().map(|id| self.peer(*id)).collect();
        for id in members {
            let outcome = step(
                &self.addr(*id),
                RG,
                1,
                1,
                step_command::Step::Create(CreateStep {
                    bootstrap: true,
                    members: peers.clone(),
                    campaign: false,
                    regions: vec![RegionDescriptor {
                        region_id: REGION,
                        object_id: 7,
                        range: Some(KeyRange {
                            start: b"a".to_vec(),
                            end: b"z".to_vec(),
                        }),
                        epoch: Some(RegionEpoch {
                            version: 1,
                            conf_ver: 0,
                        }),
                    }],
                }),
            )
            .await;
            assert_ok(&outcome);
        }
        self.wait_leader(RG).await;
    }

    /// Waits until some running member leads `rg` and has applied its regions.
    pub async fn wait_leader(&self, rg: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for s in self.stores.iter().filter(|s| s.is_running()) {
                if let Ok(status) = status(&s.addr).await
                    && status
                        .replicas
                        .iter()
                        .any(|r| r.rg_id == rg && r.is_leader && !r.regions.is_empty())
                {
                    return s.id;
                }
            }
            assert!(Instant::now() < deadline, "no leader for RG {rg}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub async fn wait_ready(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(addr).await.is_err() {
        assert!(Instant::now() < deadline, "store at {addr} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    store_node::security::pki::TestPki::shared()
        .security(&store_node::security::Identity::Mc(1))
        .endpoint(addr)
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(60))
        .connect()
        .await
}

pub async fn status(addr: &str) -> Result<GetStoreStatusResponse, String> {
    let channel = channel(addr).await.map_err(|e| e.to_string())?;
    let mut client = StoreServiceClient::new(channel);
    client
        .get_store_status(GetStoreStatusRequest::default())
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.to_string())
}

pub async fn replica_status(addr: &str, rg: u64) -> Option<ReplicaStatus> {
    status(addr)
        .await
        .ok()?
        .replicas
        .into_iter()
        .find(|r| r.rg_id == rg)
}

pub async fn execute(addr: &str, request: ExecuteStepRequest) -> ExecuteStepResponse {
    let mut client = StoreServiceClient::new(channel(addr).await.expect("store reachable"));
    client
        .execute_step(request)
        .await
        .expect("ExecuteStep answers")
        .into_inner()
}

pub fn request(
    rg: u64,
    job_id: u64,
    step_seq: u32,
    mc_term: u64,
    step: step_command::Step,
) -> ExecuteStepRequest {
    ExecuteStepRequest {
        envelope: Some(StepEnvelope {
            job_id,
            step_seq,
            attempt: 1,
            mc_term,
            rg_id: rg,
            deadline_ms: 30_000,
        }),
        command: Some(StepCommand { step: Some(step) }),
    }
}

pub async fn step(
    addr: &str,
    rg: u64,
    job_id: u64,
    step_seq: u32,
    s: step_command::Step,
) -> StepOutcome {
    execute(addr, request(rg, job_id, step_seq, 1, s))
        .await
        .outcome
        .expect("an outcome")
}

pub fn assert_ok(outcome: &StepOutcome) {
    assert!(
        matches!(outcome.result, Some(step_outcome::Result::Ok(_))),
        "step failed: {outcome:?}"
    );
}

pub fn ctx(version: u64) -> Option<RegionContext> {
    Some(RegionContext {
        region_id: REGION,
        epoch: Some(RegionEpoch {
            version,
            conf_ver: 0,
        }),
    })
}

/// Puts `key(i)` for `range` on whoever leads, following NotLeader hints and retrying while
/// no leader is known; returns when every put was acknowledged.
pub async fn put_all(cluster: &Cluster, range: std::ops::Range<u64>, concurrency: usize) {
    use futures::StreamExt;
    let addrs: Vec<String> = cluster
        .stores
        .iter()
        .filter(|s| s.is_running())
        .map(|s| s.addr.clone())
        .collect();
    futures::stream::iter(range)
        .for_each_concurrent(concurrency, |i| {
            let addrs = addrs.clone();
            async move { put_one(&addrs, REGION, 1, key(i), format!("v{i}").into_bytes()).await }
        })
        .await;
}

pub async fn put_one(addrs: &[String], region: u64, version: u64, key: Vec<u8>, value: Vec<u8>) {
    store_node::client::put_following_leader(
        addrs,
        region,
        version,
        key,
        value,
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("put did not succeed in time: {e:?}"));
}

/// Every key of region REGION read through store `id`, made the RG's leader first (again if
/// an election moves leadership away between the transfer and the scan, or the read could not
/// confirm leadership in time).
pub async fn scan_on(cluster: &Cluster, id: u64, job: u64) -> Vec<KvPair> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        make_leader(cluster, RG, id, job).await;
        match try_scan_all(&cluster.addr(id), 1).await {
            Ok(pairs) => return pairs,
            // Unavailable: leadership moved on (or was not confirmed in time) mid-read.
            Err(e)
                if Instant::now() < deadline
                    && matches!(e.code(), ErrorCode::NotLeader | ErrorCode::Unavailable) =>
            {
                continue;
            }
            Err(e) => panic!("scan on store {id} failed: {e:?}"),
        }
    }
}

/// Every key of region REGION on the store at `addr`, which must lead the RG.
pub async fn scan_all(addr: &str, version: u64) -> Vec<KvPair> {
    try_scan_all(addr, version)
        .await
        .unwrap_or_else(|e| panic!("scan failed: {e:?}"))
}

pub async fn try_scan_all(addr: &str, version: u64) -> Result<Vec<KvPair>, Error> {
    let mut kv = KvServiceClient::new(channel(addr).await.unwrap());
    let mut out = Vec::new();
    let mut start = b"a".to_vec();
    loop {
        let reply = kv
            .scan(ScanRequest {
                context: ctx(version),
                start: start.clone(),
                end: vec![],
                limit: 1000,
                keys_only: false,
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(error) = reply.error {
            return Err(error);
        }
        let more = reply.more;
        if let Some(last) = reply.pairs.last() {
            start = last.key.clone();
            start.push(0);
        }
        out.extend(reply.pairs);
        if !more {
            return Ok(out);
        }
    }
}

/// Makes `to` the leader of `rg` (TransferLeader on the current leader). Each try is a step
/// of its own: a repeat of one that succeeded would only replay its outcome.
pub async fn make_leader(cluster: &Cluster, rg: u64, to: u64, job: u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for seq in 1.. {
        let leader = cluster.wait_leader(rg).await;
        if leader == to {
            return;
        }
        let outcome = step(
            &cluster.addr(leader),
            rg,
            job,
            seq,
            step_command::Step::TransferLeader(TransferLeaderStep { to_store_id: to }),
        )
        .await;
        if matches!(outcome.result, Some(step_outcome::Result::Ok(_))) {
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "could not move leadership to {to}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a leader step to whoever leads `rg`, retrying on NotLeader/Unavailable.
pub async fn leader_step(
    cluster: &Cluster,
    rg: u64,
    job: u64,
    seq: u32,
    s: step_command::Step,
) -> StepOutcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = cluster.wait_leader(rg).await;
        let outcome = step(&cluster.addr(leader), rg, job, seq, s.clone()).await;
        match outcome.result {
            Some(step_outcome::Result::NotLeader(_))
            | Some(step_outcome::Result::Unavailable(_))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return outcome,
        }
    }
}

/// Opens a stopped store's RocksDB read-only-ish (the process must be dead) and counts what it
/// holds for `rg`: (user keys in [a, z), log entries, per-RG records).
pub fn inspect_rg(dir: &std::path::Path, rg: u64) -> (usize, usize, usize) {
    let path = dir.join("db");
    let cfs = ["default", "raft_log", "meta"];
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &path, cfs, false)
        .unwrap();
    let data = db
        .iterator_cf(
            db.cf_handle("default").unwrap(),
            rocksdb::IteratorMode::From(b"a", rocksdb::Direction::Forward),
        )
        .take_while(|kv| kv.as_ref().unwrap().0.as_ref() < b"z".as_slice())
        .count();
    let prefix = rg.to_be_bytes();
    let logs = db
        .iterator_cf(
            db.cf_handle("raft_log").unwrap(),
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        )
        .take_while(|kv| kv.as_ref().unwrap().0.starts_with(&prefix))
        .count();
    let mut rg_prefix = b"rg/".to_vec();
    rg_prefix.extend_from_slice(&prefix);
    let records = db
        .iterator_cf(
            db.cf_handle("meta").unwrap(),
            rocksdb::IteratorMode::From(&rg_prefix, rocksdb::Direction::Forward),
        )
        .take_while(|kv| kv.as_ref().unwrap().0.starts_with(&rg_prefix))
        .count();
    (data, logs, records)
}

/// Reads `key` through the leader of whichever RG holds `region` now.
pub async fn get_via(addr: &str, region: u64, version: u64, key: &[u8]) -> GetResponse {
    let mut kv = KvServiceClient::new(channel(addr).await.unwrap());
    let context = Some(RegionContext {
        region_id: region,
        epoch: Some(RegionEpoch {
            version,
            conf_ver: 0,
        }),
    });
    kv.get(GetRequest {
        context,
        key: key.to_vec(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// RocksDB's count of entries in the data CF of a stopped store: every put ever applied that
/// is not compacted away. Copying data would add entries; moving metadata adds none.
pub fn data_entries(dir: &std::path::Path) -> u64 {
    let path = dir.join("db");
    let cfs = ["default", "raft_log", "meta"];
    let db = rocksdb::DB::open_cf_for_read_only(&rocksdb::Options::default(), &path, cfs, false)
        .unwrap();
    db.property_int_value_cf(
        db.cf_handle("default").unwrap(),
        "rocksdb.estimate-num-keys",
    )
    .unwrap()
    .unwrap()
}

/// Writes `key(i)` → `value(i, size)` for `range` with BatchWrite, 100 keys per batch, on the
/// leader of RG `RG`.
pub async fn batch_put(cluster: &Cluster, range: std::ops::Range<u64>, size: usize) {
    let mut i = range.start;
    while i < range.end {
        let end = (i + 100).min(range.end);
        let mutations: Vec<Mutation> = (i..end)
            .map(|k| Mutation {
                op: MutationOp::Put as i32,
                key: key(k),
                value: value(k, size),
            })
            .collect();
        loop {
            let leader = cluster.wait_leader(RG).await;
            let mut kv = KvServiceClient::new(channel(&cluster.addr(leader)).await.unwrap());
            let reply = kv
                .batch_write(BatchWriteRequest {
                    context: ctx(1),
                    mutations: mutations.clone(),
                })
                .await;
            if matches!(reply, Ok(ref r) if r.get_ref().error.is_none()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        i = end;
    }
}

/// `size` bytes that do not compress (a seeded xorshift stream), so snapshot sizes are real.
pub fn value(i: u64, size: usize) -> Vec<u8> {
    let mut v = format!("v{i}-").into_bytes();
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

/// True while a snapshot is being received into `dir` (a partial SST exists).
pub fn receiving_snapshot(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("snapshots").join("recv")) else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::metadata(e.path().join("data.sst"))
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    })
}

/// Held by the tests that load the machine most (tens of MiB through Raft, rate-limited
/// snapshots under kill -9): run side by side on two cores, each starved the other's Raft
/// heartbeats into elections and timeouts. The other tests still run beside either one.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

pub async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keys of `[start, end)` in a stopped (or live: RocksDB allows a reader beside it) store's
/// RocksDB.
pub fn keys_in(dir: &std::path::Path, start: &[u8], end: &[u8]) -> usize {
    let cfs = ["default", "raft_log", "meta"];
    let Ok(db) = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        dir.join("db"),
        cfs,
        false,
    ) else {
        return 0;
    };
    db.iterator_cf(
        db.cf_handle("default").unwrap(),
        rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
    )
    .map_while(|item| item.ok())
    .take_while(|(k, _)| k.as_ref() < end)
    .count()
}
