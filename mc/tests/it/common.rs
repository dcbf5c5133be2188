//! Real `mc serve` processes and real store nodes for the MC's integration tests.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use store_node::client::put_following_leader;
use store_node::server::StoreNode;
use store_node::store::RaftTuning;

/// Killed when dropped, so a failing test leaves no MC behind.
pub type McProcess = testkit::Killed;

pub use testkit::{free_addr, key};

/// One MC with short heartbeat intervals; `group` is `[(id, addr)]` of every member (empty
/// for a one-MC group).
pub fn start_mc(id: u64, addr: &str, dir: &std::path::Path, group: &[(u64, String)]) -> McProcess {
    start_mc_with(
        id,
        addr,
        dir,
        group,
        &[
            "--disconnected-after-ms",
            "5000",
            "--down-after-ms",
            "60000",
        ],
    )
}

/// `start_mc` with other liveness flags (or any extra flags).
pub fn start_mc_with(
    id: u64,
    addr: &str,
    dir: &std::path::Path,
    group: &[(u64, String)],
    extra: &[&str],
) -> McProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mc"));
    cmd.args(["serve", "--id", &id.to_string(), "--listen", addr]);
    cmd.args(
        store_node::security::pki::TestPki::shared().flags(&store_node::security::Identity::Mc(id)),
    );
    // Short heartbeats unless the test sets its own.
    for flag in ["--store-heartbeat-ms", "--rg-heartbeat-ms"] {
        if !extra.contains(&flag) {
            cmd.args([flag, "50"]);
        }
    }
    cmd.args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env(
            "RUST_LOG",
            std::env::var("MC_TEST_LOG").unwrap_or("warn,openraft=error".into()),
        )
        .stdout(Stdio::null());
    if !group.is_empty() {
        let peers: Vec<String> = group.iter().map(|(i, a)| format!("{i}={a}")).collect();
        cmd.arg("--peers").arg(peers.join(","));
    }
    testkit::Killed(cmd.spawn().expect("spawn mc"))
}

pub async fn jobs(addr: &str) -> JobServiceClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(JobServiceClient::new)
        {
            return c;
        }
        assert!(Instant::now() < deadline, "mc at {addr} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The group's members as `addr` (any member) reports them, once a leader is known.
pub async fn members(addr: &str) -> GetMembersResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(ClusterServiceClient::new)
            && let Ok(r) = c.get_members(GetMembersRequest {}).await
        {
            let r = r.into_inner();
            if r.leader_id != 0 {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "no MC leader via {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn start_store(id: u64, dir: &std::path::Path, mcs: &[String]) -> StoreNode {
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    StoreNode::start_on_loopback(id, dir, raft, mcs.to_vec(), Duration::from_millis(50))
        .await
        .unwrap()
}

/// Starts a store again on its data dir and address (its RG peers dial it there), waiting
/// while the stopped instance still holds the RocksDB lock (its last tasks are ending).
pub async fn restart_store(
    id: u64,
    addr: std::net::SocketAddr,
    dir: &std::path::Path,
    mcs: &[String],
) -> StoreNode {
    let raft = RaftTuning {
        heartbeat_ms: 100,
        election_min_ms: 300,
        election_max_ms: 600,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match StoreNode::start_at(
            addr,
            id,
            dir,
            raft.clone(),
            mcs.to_vec(),
            Duration::from_millis(50),
        )
        .await
        {
            Ok(node) => return node,
            Err(e) if Instant::now() < deadline => {
                tracing_free_wait(&e).await;
            }
            Err(e) => panic!("store {id} did not restart: {e}"),
        }
    }
}

async fn tracing_free_wait(_e: &store_node::error::StoreError) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The `mcctl` binary (its own crate, with no integration tests, so `cargo test` does not
/// build it: `./dev test` builds it first).
pub fn mcctl_exe() -> std::path::PathBuf {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_mc")).with_file_name("mcctl");
    assert!(
        exe.exists(),
        "{} is missing: run the tests with `./dev test` (or build it with \
         `cargo build -p mcctl` first)",
        exe.display()
    );
    exe
}

/// Submits until the MC's view knows enough to accept it (stores registered, RG reported).
pub async fn submit(addr: &str, spec: job_spec::Spec, request_id: &str) -> Job {
    submit_retrying(addr, spec, request_id, false).await
}

/// As `submit`, and also while another job holds a lock the job needs (as an SRE would
/// retry after the scheduler's job on the same RG ends).
pub async fn submit_when_unlocked(addr: &str, spec: job_spec::Spec, request_id: &str) -> Job {
    submit_retrying(addr, spec, request_id, true).await
}

async fn submit_retrying(
    addr: &str,
    spec: job_spec::Spec,
    request_id: &str,
    past_locks: bool,
) -> Job {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = jobs(addr).await;
        let req = SubmitJobRequest {
            request_id: request_id.into(),
            spec: Some(JobSpec {
                spec: Some(spec.clone()),
            }),
            ..Default::default()
        };
        match c.submit_job(req).await {
            Ok(r) => return r.into_inner().job.unwrap(),
            Err(s) if s.code() == tonic::Code::NotFound && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            // The MC went away before it answered (killed, restarting): the same request id
            // gets the same job once it is back, whether or not the first try made it.
            Err(s)
                if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(s)
                if past_locks
                    && Instant::now() < deadline
                    && matches!(
                        Error::from_status(&s).and_then(|e| e.detail),
                        Some(error::Detail::LockHeld(_))
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(s) => panic!("submit failed: {s:?}"),
        }
    }
}

/// Polls `addr` until `until` holds for the job; fails on a Failed job or after a minute.
pub async fn wait_job(addr: &str, id: u64, until: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        if let Ok(mut c) = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .map(JobServiceClient::new)
            && let Ok(r) = c
                .get_job(GetJobRequest {
                    job_id: id,
                    include_records: true,
                })
                .await
        {
            let job = r.into_inner().job.unwrap();
            if until(&job) {
                return job;
            }
            assert!(
                job.state != JobState::Failed as i32,
                "job {id} failed: {:?}",
                job.last_error
            );
            last = Some(job);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not get there in time; last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn records(addr: &str, job: u64) -> Vec<ExecutionRecord> {
    jobs(addr)
        .await
        .get_job(GetJobRequest {
            job_id: job,
            include_records: true,
        })
        .await
        .unwrap()
        .into_inner()
        .records
}

pub fn succeeded(job: &Job) -> bool {
    job.state == JobState::Succeeded as i32
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A step re-sent after a crash or failover is answered from the store's step record, never
/// executed a second time.
pub fn assert_no_step_ran_twice(stores: &[StoreNode], job: u64) {
    for s in stores {
        for ((job_id, step), n) in s.store.steps_executed() {
            assert!(
                job_id != job || n == 1,
                "store {} ran step {step} of job {job} {n} times",
                s.store.id()
            );
        }
    }
}

pub async fn put(addrs: &[String], i: u64, value: Vec<u8>) {
    put_following_leader(addrs, 1, 1, key(i), value, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("put {i}: {e:?}"));
}

/// CreateRg on stores 1-3 (RG 1) and one region [a, z) of object 7 in it, through `mc`.
pub async fn create_rg_and_region(mc: &str) {
    create_rg_and_region_on(mc, &[1, 2, 3]).await
}

/// The same on the given stores.
pub async fn create_rg_and_region_on(mc: &str, stores: &[u64]) {
    wait_stores_up(mc, stores.len()).await;
    let rg = submit(
        mc,
        job_spec::Spec::CreateRg(CreateRgSpec {
            store_ids: stores.to_vec(),
            leader_store_id: stores[0],
            ..Default::default()
        }),
        "rg",
    )
    .await;
    let Some(job_spec::Spec::CreateRg(created)) = rg.spec.as_ref().and_then(|s| s.spec.clone())
    else {
        panic!("CreateRg job without its spec")
    };
    assert_eq!(created.rg_id, 1, "the allocated RG id is reported");
    wait_job(mc, rg.id, succeeded).await;
    let region = submit(
        mc,
        job_spec::Spec::CreateRegion(CreateRegionSpec {
            rg_id: 1,
            object_id: 7,
            range: Some(KeyRange {
                start: b"a".to_vec(),
                end: b"z".to_vec(),
            }),
            region_id: 0,
        }),
        "region",
    )
    .await;
    wait_job(mc, region.id, succeeded).await;
}

/// RG 1 left store 1 (no replica, no keys of [a, z)) and store 4 holds at least `keys` of them.
pub async fn assert_rg_moved_from_1_to_4(stores: &[StoreNode], keys: u64) {
    assert!(
        stores[0].store.replica(1).is_none(),
        "store 1 still hosts RG 1"
    );
    assert_eq!(
        stores[0].store.engine.count_range(b"a", b"z").unwrap().0,
        0,
        "store 1 still holds data"
    );
    let s4 = &stores[3].store;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s4.engine.count_range(b"a", b"z").unwrap().0 < keys {
        assert!(
            Instant::now() < deadline,
            "store 4 misses acknowledged writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An object named by its path.
pub fn by_path(p: &str) -> Option<ObjectRef> {
    Some(ObjectRef {
        target: Some(object_ref::Target::Path(p.into())),
    })
}

/// Waits until the MC lists `n` stores Up.
pub async fn wait_stores_up(mc: &str, n: usize) {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stores = c
            .list_stores(ListStoresRequest::default())
            .await
            .unwrap()
            .into_inner()
            .stores;
        if stores
            .iter()
            .filter(|s| s.state == StoreState::Up as i32)
            .count()
            >= n
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "stores not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `store-node` process (the store's own binary, built by `cargo test --workspace` next to
/// the MC's binaries), killed when dropped.
pub struct StoreProcess {
    pub id: u64,
    pub addr: String,
    _proc: testkit::Proc,
}

impl StoreProcess {
    /// Store `id` on a fresh port with data under `dir/p{id}`, reporting to `mc` every 50 ms;
    /// `env` is extra environment (failpoints).
    pub fn start(id: u64, dir: &std::path::Path, mc: &str, env: &[(&str, &str)]) -> Self {
        let exe = std::path::Path::new(env!("CARGO_BIN_EXE_mc")).with_file_name("store-node");
        assert!(
            exe.exists(),
            "{} is missing: run the tests with `cargo test --workspace` (or build it with \
             `cargo build -p store-node`)",
            exe.display()
        );
        let addr = free_addr();
        let mut args: Vec<String> = ["--store-id", &id.to_string(), "--listen", &addr, "--mc", mc]
            .map(String::from)
            .into();
        args.extend(
            store_node::security::pki::TestPki::shared()
                .flags(&store_node::security::Identity::Store(id)),
        );
        args.extend(
            [
                "--store-heartbeat-ms",
                "50",
                "--rg-heartbeat-ms",
                "50",
                "--raft-heartbeat-ms",
                "100",
                "--labels",
                &format!("zone=z{id},host=h{id}"),
                "--data-dir",
                &dir.join(format!("p{id}")).display().to_string(),
            ]
            .map(String::from),
        );
        let mut proc = testkit::Proc::new(exe, addr.clone(), args).stderr(testkit::Stderr::Inherit);
        for (k, v) in env {
            proc = proc.env(*k, *v);
        }
        Self {
            id,
            addr,
            _proc: proc.started(),
        }
    }
}

/// The reasons of every decision a scheduler took, from the whole scheduling log (all pages:
/// a busy test logs more than one page of refused proposals, and the one that matters may be
/// on any of them).
pub async fn taken_reasons(
    cluster: &mut ClusterServiceClient<tonic::transport::Channel>,
    scheduler: &str,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut token = String::new();
    loop {
        let reply = cluster
            .query_history(QueryHistoryRequest {
                kind: HistoryKind::Scheduling as i32,
                subject: format!("scheduler/{scheduler}"),
                page: Some(PageRequest {
                    page_token: token,
                    limit: 1000,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        reasons.extend(reply.entries.into_iter().filter_map(|e| match e.entry {
            Some(history_entry::Entry::Decision(d)) if d.taken => Some(d.reason),
            _ => None,
        }));
        token = reply.page.map(|p| p.next_page_token).unwrap_or_default();
        if token.is_empty() {
            return reasons;
        }
    }
}

/// One `mc serve` (id 1, a group of its own) with `flags`, its data in a fresh temporary
/// directory: the directory (which the stores share), the MC's address, the process.
pub fn one_mc(flags: &[&str]) -> (tempfile::TempDir, String, McProcess) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mc = start_mc_with(1, &addr, &dir.path().join("mc"), &[], flags);
    (dir, addr, mc)
}

/// Every `rpc` of the named services, from the .proto files.
pub fn rpcs(services: &[&str]) -> Vec<String> {
    let files = [
        include_str!("../../../proto/proto/mc/v1/cluster.proto"),
        include_str!("../../../proto/proto/mc/v1/job.proto"),
        include_str!("../../../proto/proto/mc/v1/meta.proto"),
        include_str!("../../../proto/proto/mc/v1/heartbeat.proto"),
        include_str!("../../../proto/proto/mc/v1/raft.proto"),
        include_str!("../../../proto/proto/mc/v1/store.proto"),
        include_str!("../../../proto/proto/mc/v1/kv.proto"),
    ];
    let mut out = Vec::new();
    for text in files {
        let mut service = "";
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap_or("");
            } else if let Some(rest) = line.strip_prefix("rpc ")
                && services.contains(&service)
            {
                let method = rest.split('(').next().unwrap().trim();
                out.push(format!("/mc.v1.{service}/{method}"));
            }
        }
    }
    out
}

/// CreateTable of `name` with `indexes` indexes in database `app`, `name` its request id.
pub fn app_table(name: &str, indexes: usize) -> CreateTableRequest {
    CreateTableRequest {
        request_id: name.into(),
        database: by_path("app"),
        name: name.into(),
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("{name}_i{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
