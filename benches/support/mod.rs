//! Shared by the store benchmarks: in-process store nodes serving real gRPC on loopback, the
//! steps that create an RG, latency percentiles.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;
use store_node::heartbeat::HeartbeatOptions;
use store_node::server::StoreNode;
use store_node::store::{RaftTuning, StoreOptions};

pub fn options(
    id: u64,
    dir: &std::path::Path,
    advertise: String,
    raft: RaftTuning,
    sync: bool,
) -> StoreOptions {
    StoreOptions {
        store_id: id,
        data_dir: dir.join(format!("s{id}")),
        advertise,
        raft,
        sync,
        snapshot_rate: 0,
        security: store_node::security::pki::TestPki::shared()
            .security(&store_node::security::Identity::Store(id)),
    }
}

pub fn no_mc() -> HeartbeatOptions {
    HeartbeatOptions {
        mc_endpoints: vec![],
        labels: Default::default(),
        capacity_bytes: 0,
        store_interval: Duration::from_secs(10),
        rg_interval: Duration::from_secs(10),
    }
}

pub async fn start_store(id: u64, dir: &std::path::Path, raft: RaftTuning) -> StoreNode {
    start_store_in(Mode::Tls, id, dir, raft).await
}

/// TLS on every connection (what every component runs with), or the plaintext baseline a
/// bench measures TLS's cost against in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plaintext,
    Tls,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plaintext => "plaintext",
            Mode::Tls => "tls",
        }
    }

    /// The security of `who` in this mode (certificates of the process's test CA).
    pub fn security(self, who: store_node::security::Identity) -> store_node::security::Security {
        match self {
            Mode::Plaintext => store_node::security::Security::plaintext(),
            Mode::Tls => store_node::security::pki::TestPki::shared().security(&who),
        }
    }
}

pub async fn start_store_in(
    mode: Mode,
    id: u64,
    dir: &std::path::Path,
    raft: RaftTuning,
) -> StoreNode {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = StoreNode::start_listening(
        listener,
        id,
        dir,
        raft,
        vec![],
        Duration::from_secs(10),
        mode.security(store_node::security::Identity::Store(id)),
    )
    .await
    .unwrap();
    // No MC tells it who may write: the test CA's admin may.
    node.store.data_access.bootstrap(&["admin".into()]);
    node
}

pub async fn step(addr: &str, rg: u64, job: u64, step: step_command::Step) -> StepOutcome {
    step_in(Mode::Tls, addr, rg, job, step).await
}

/// A step sent as MC 1 would, in `mode`.
pub async fn step_in(
    mode: Mode,
    addr: &str,
    rg: u64,
    job: u64,
    step: step_command::Step,
) -> StepOutcome {
    let mut client = mode
        .security(store_node::security::Identity::Mc(1))
        .connect(addr)
        .await
        .map(StoreServiceClient::new)
        .unwrap();
    let req = ExecuteStepRequest {
        envelope: Some(StepEnvelope {
            job_id: job,
            step_seq: 1,
            attempt: 1,
            mc_term: 1,
            rg_id: rg,
            deadline_ms: 600_000,
        }),
        command: Some(StepCommand { step: Some(step) }),
    };
    client
        .execute_step(req)
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

pub fn ok(outcome: &StepOutcome) {
    assert!(
        matches!(outcome.result, Some(step_outcome::Result::Ok(_))),
        "{outcome:?}"
    );
}

/// Creates RG `rg` with region `rg` over `[start, end)` on every node, and waits for a leader.
pub async fn create_rg(nodes: &[&StoreNode], rg: u64, start: &[u8], end: &[u8]) -> u64 {
    let members: Vec<ReplicaPeer> = nodes
        .iter()
        .map(|n| ReplicaPeer {
            store_id: n.store.id(),
            address: n.addr.to_string(),
            role: ReplicaRole::Voter as i32,
        })
        .collect();
    for n in nodes {
        let create = CreateStep {
            campaign: false,
            bootstrap: true,
            members: members.clone(),
            regions: vec![RegionDescriptor {
                region_id: rg,
                object_id: rg,
                range: Some(KeyRange {
                    start: start.to_vec(),
                    end: end.to_vec(),
                }),
                epoch: Some(RegionEpoch {
                    version: 1,
                    conf_ver: 0,
                }),
            }],
        };
        let mode = if n.store.security().is_tls() {
            Mode::Tls
        } else {
            Mode::Plaintext
        };
        ok(&step_in(
            mode,
            &n.addr.to_string(),
            rg,
            rg,
            step_command::Step::Create(create),
        )
        .await);
    }
    wait_leader(nodes, rg).await
}

pub async fn wait_leader(nodes: &[&StoreNode], rg: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for n in nodes {
            if let Some(r) = n.store.replica(rg)
                && r.raft.as_leader().is_ok()
                && !n.store.regions().of_rg(rg).is_empty()
            {
                return n.store.id();
            }
        }
        assert!(Instant::now() < deadline, "no leader for RG {rg}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// This bench binary again, as a child process that reads `spec` from the env var `var` and
/// trusts the shared test PKI (multi-process benches re-execute themselves as their servers).
pub fn spawn_self(var: &str, spec: String) -> std::process::Child {
    let (pki_var, pki_dir) = store_node::security::pki::TestPki::shared().env();
    std::process::Command::new(std::env::current_exe().unwrap())
        .env(var, spec)
        .env(pki_var, pki_dir)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A server child process, killed when dropped: a failed run leaves no server behind.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child side of `one_mc`: `ADDR|DIR` from the env var, one `mc serve` at its defaults
/// until killed.
pub fn serve_one_mc(spec: &str) {
    let (addr, dir) = spec.split_once('|').unwrap();
    let listen = addr.parse().unwrap();
    let config = mc::server::ServeConfig::single(listen, dir.into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        mc::server::serve(config, listener, std::future::pending())
            .await
            .unwrap();
    });
}

/// One `mc serve` at its defaults in `dir/mc` (this bench re-executed with `var` set; its
/// `main` calls `serve_one_mc`): its address and the process.
pub fn one_mc(var: &str, dir: &std::path::Path) -> (String, Killed) {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let child = spawn_self(var, format!("{addr}|{}", dir.join("mc").display()));
    (addr, Killed(child))
}

/// `n` store nodes in this process at default settings (TLS, MC heartbeats every 10 s),
/// reporting to the MC at `mc`; `BENCH_HIBERNATE_MS` sets how long an idle RG waits before it
/// sleeps (0: never), to compare a figure with hibernation off.
pub async fn stores_reporting_to(mc: &str, dir: &std::path::Path, n: u64) -> Vec<StoreNode> {
    let mut raft = RaftTuning::default();
    if let Some(ms) = std::env::var("BENCH_HIBERNATE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        raft.hibernate_after_ms = ms;
    }
    let mut stores = Vec::new();
    for id in 1..=n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        stores.push(
            StoreNode::start_listening(
                listener,
                id,
                &dir.join(format!("s{id}")),
                raft.clone(),
                vec![mc.to_string()],
                Duration::from_secs(10),
                store_node::security::pki::TestPki::shared()
                    .security(&store_node::security::Identity::Store(id)),
            )
            .await
            .unwrap(),
        );
    }
    stores
}

/// An admin's `mc::client` on the MC at `mc`, once it answers: a minute at most, so a bench
/// whose MC child died (it lost the race for its port, say) fails instead of retrying forever.
pub async fn admin_client(mc: &str) -> std::sync::Arc<mc::client::Client> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match mc::client::Client::connect(mc, store_node::security::pki::TestPki::shared().admin())
            .await
        {
            Ok(c) => return std::sync::Arc::new(c),
            Err(e) if Instant::now() > until => panic!("the MC at {mc} never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// RG `rg` as the jobs that made it left it: 3 voters on stores 1-3, 4 regions of object
/// `rg` with 8-byte keys, led by `leader` (None: not reported yet) at `term`.
#[allow(dead_code)]
pub fn made_rg(rg: u64, leader: Option<u64>, term: u64) -> mc::cluster::rgs::RgRecord {
    let regions: Vec<mc::cluster::RegionInfo> = (0..4)
        .map(|r| {
            let id = rg * 4 + r;
            mc::cluster::RegionInfo {
                id,
                rg,
                object: rg,
                start: id.to_be_bytes().to_vec().into(),
                end: (id + 1).to_be_bytes().to_vec().into(),
                version: 1,
                size_bytes: 0,
                keys: 0,
            }
        })
        .collect();
    mc::cluster::rgs::RgRecord {
        schema: mc::cluster::rgs::SCHEMA_VERSION,
        rg: mc::cluster::RgInfo {
            id: rg,
            members: (1..=3).map(|s| (s, mc::cluster::Role::Voter)).collect(),
            leader,
            regions: regions.iter().map(|r| r.id).collect(),
            term,
            conf_ver: 1,
            ..Default::default()
        },
        regions,
    }
}
