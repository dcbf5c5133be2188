//! Idle cost: three store processes host the same 1,000 idle RGs (every RG on every store,
//! leaders spread by election); we read one store's CPU time and RSS from /proc over a
//! window in which nothing is written. Goal: under 10% of one core.
//!
//! Run: `cargo bench --bench store_idle` (env IDLE_BENCH_RGS, default 1000; IDLE_BENCH_SECS,
//! default 30). The bench re-executes itself as the store processes.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::*;
use store_node::store::RaftTuning;
use support::*;

const CHILD: &str = "STORE_IDLE_CHILD";

fn child_main(spec: &str) {
    // spec: id,listen,dir
    let parts: Vec<&str> = spec.split(',').collect();
    let (id, listen, dir) = (
        parts[0].parse::<u64>().unwrap(),
        parts[1].to_string(),
        std::path::PathBuf::from(parts[2]),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
        let mut raft = RaftTuning::default();
        if let Some(ms) = std::env::var("IDLE_BENCH_HEARTBEAT_MS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            raft = RaftTuning {
                heartbeat_ms: ms,
                election_min_ms: ms * 5,
                election_max_ms: ms * 10,
                ..raft
            };
        }
        let options = options(id, &dir, listen.clone(), raft, true);
        let node = store_node::server::StoreNode::start(listener, options, no_mc())
            .await
            .unwrap();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        node.stop().await;
    });
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of /proc/pid/stat; after the command they are 11, 12.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child_main(&spec);
    }
    let rgs: u64 = std::env::var("IDLE_BENCH_RGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("IDLE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let addrs: Vec<String> = (0..3)
        .map(|_| store_node::ports::free_loopback_addr())
        .collect();
    let mut children: Vec<Child> = (0..3)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .env(
                    CHILD,
                    format!("{},{},{}", i + 1, addrs[i], dir.path().display()),
                )
                .env(
                    store_node::security::pki::TestPki::shared().env().0,
                    store_node::security::pki::TestPki::shared().env().1,
                )
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut clients = Vec::new();
        for addr in &addrs {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(c) = store_node::security::pki::mc_connect(format!("http://{addr}")).await.map(StoreServiceClient::new) {
                    clients.push(c);
                    break;
                }
                assert!(Instant::now() < deadline, "store at {addr} did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let members: Vec<ReplicaPeer> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| ReplicaPeer { store_id: i as u64 + 1, address: a.clone(), role: ReplicaRole::Voter as i32 })
            .collect();
        let t = Instant::now();
        for rg in 1..=rgs {
            for client in clients.iter_mut() {
                let start = format!("r{rg:06}").into_bytes();
                let end = format!("r{:06}", rg + 1).into_bytes();
                let create = CreateStep {
                    campaign: false,
                    bootstrap: true,
                    members: members.clone(),
                    regions: vec![RegionDescriptor {
                        region_id: rg,
                        object_id: rg,
                        range: Some(KeyRange { start, end }),
                        epoch: Some(RegionEpoch { version: 1, conf_ver: 0 }),
                    }],
                };
                let req = ExecuteStepRequest {
                    envelope: Some(StepEnvelope { job_id: rg, step_seq: 1, attempt: 1, mc_term: 1, rg_id: rg, deadline_ms: 0 }),
                    command: Some(StepCommand { step: Some(step_command::Step::Create(create)) }),
                };
                ok(&client.execute_step(req).await.unwrap().into_inner().outcome.unwrap());
            }
        }
        // Every RG elected a leader.
        loop {
            let mut leaders = 0;
            let mut per_store = Vec::new();
            for client in clients.iter_mut() {
                let status = client.get_store_status(GetStoreStatusRequest::default()).await.unwrap().into_inner();
                let n = status.replicas.iter().filter(|r| r.is_leader).count();
                per_store.push(n);
                leaders += n;
            }
            if leaders as u64 == rgs {
                println!("{rgs} RGs x 3 replicas created and led in {:.1} s; leaders per store {per_store:?}", t.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // Let elections and first heartbeats settle, then measure an idle window.
    std::thread::sleep(Duration::from_secs(5));
    let pid = children[0].id();
    let ticks_per_sec = 100.0; // CLK_TCK on Linux
    let before = cpu_ticks(pid);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_sec;
    let cpu = used / t.elapsed().as_secs_f64() * 100.0;
    let heartbeat = std::env::var("IDLE_BENCH_HEARTBEAT_MS")
        .unwrap_or_else(|_| RaftTuning::default().heartbeat_ms.to_string());
    println!(
        "idle store hosting {rgs} RGs (Raft heartbeat {heartbeat} ms): CPU {cpu:.1}% of one core, RSS {} MiB",
        rss_kib(pid) / 1024
    );
    for child in &mut children {
        terminate(child);
    }
}

fn terminate(child: &mut Child) {
    // SIGTERM for a clean shutdown; the store flushes and exits.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
