//! Idle cost: three store processes host the same 1,000 idle RGs (every RG on every store,
//! leaders spread by election); once every replica of the measured store sleeps (hibernation,
//! default settings), we read its CPU time and RSS from /proc over a window in which nothing is
//! written. Goal: under 5% of one core at 10,000 RGs. Then the time for a write to a sleeping
//! RG (it wakes the RG), p50/p99, against a write to the same RG once awake.
//!
//! Run: `cargo bench --bench store_idle` (env IDLE_BENCH_RGS, default 1000; IDLE_BENCH_SECS,
//! default 30; IDLE_BENCH_HIBERNATE_MS, the idle time before an RG sleeps, default the
//! store's, 0 never). The bench re-executes itself as the store processes.

mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use proto::v1::kv_service_client::KvServiceClient;
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
        if let Some(ms) = std::env::var("IDLE_BENCH_HIBERNATE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            raft.hibernate_after_ms = ms;
        }
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
        // No MC tells it who may write: the test CA's admin may.
        node.store.data_access.bootstrap(&["admin".into()]);
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
    let addrs: Vec<String> = (0..3).map(|_| testkit::free_addr()).collect();
    // Killed if the bench panics (they would outlive it, holding its output open).
    let mut children: Vec<testkit::Killed> = (0..3)
        .map(|i| {
            testkit::Killed(spawn_self(
                CHILD,
                format!("{},{},{}", i + 1, addrs[i], dir.path().display()),
            ))
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
        // Every replica of store 1 asleep (unless hibernation is off).
        let sleeps = std::env::var("IDLE_BENCH_HIBERNATE_MS").map_or(true, |v| v != "0");
        let t = Instant::now();
        loop {
            if !sleeps {
                break;
            }
            let status = clients[0].get_store_status(GetStoreStatusRequest::default()).await.unwrap().into_inner();
            let asleep = status.replicas.iter().filter(|r| r.asleep).count();
            if asleep as u64 == rgs {
                println!("every replica of store 1 asleep {:.1} s after the last election", t.elapsed().as_secs_f64());
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(300), "only {asleep} of {rgs} replicas sleep");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // Let elections and first heartbeats settle, then measure an idle window.
    std::thread::sleep(Duration::from_secs(5));
    let pid = children[0].0.id();
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
    rt.block_on(write_latency(&addrs, rgs));
    for child in &mut children {
        terminate(&mut child.0);
    }
}

/// One write to each of up to 200 RGs that nothing touched since the window began (asleep,
/// if hibernation is on), sent to its leader over a connection made beforehand; then one more
/// to the same RG, now awake. Prints p50/p99 of both.
async fn write_latency(addrs: &[String], rgs: u64) {
    let mut kv = Vec::new();
    let mut leaders = std::collections::HashMap::new();
    for (i, addr) in addrs.iter().enumerate() {
        let channel = store_node::security::pki::admin_connect(format!("http://{addr}"))
            .await
            .unwrap();
        let mc = store_node::security::pki::mc_connect(format!("http://{addr}"))
            .await
            .unwrap();
        let status = StoreServiceClient::new(mc)
            .get_store_status(GetStoreStatusRequest::default())
            .await
            .unwrap()
            .into_inner();
        for r in status.replicas.iter().filter(|r| r.is_leader) {
            leaders.insert(r.rg_id, i);
        }
        kv.push(KvServiceClient::new(channel));
    }
    let n = rgs.min(200);
    let (mut asleep, mut awake) = (Vec::new(), Vec::new());
    let mut redirected = 0;
    for k in 0..n {
        let rg = 1 + k * rgs / n;
        let Some(&leader) = leaders.get(&rg) else {
            continue;
        };
        for times in [&mut asleep, &mut awake] {
            let put = PutRequest {
                context: Some(RegionContext {
                    region_id: rg,
                    epoch: Some(RegionEpoch {
                        version: 1,
                        conf_ver: 0,
                    }),
                }),
                key: format!("r{rg:06}-k").into_bytes(),
                value: vec![7; 100],
            };
            let t = Instant::now();
            let reply = kv[leader].put(put).await.unwrap().into_inner();
            if reply.error.is_some() {
                // The leader it had changed (an election while the RG slept: a follower that
                // missed its leader's beat): follow the hint, as a client does, and count it.
                redirected += 1;
                store_node::client::put_following_leader(
                    addrs,
                    rg,
                    1,
                    format!("r{rg:06}-k").into_bytes(),
                    vec![7; 100],
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            }
            times.push(t.elapsed());
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    println!(
        "write to a sleeping RG ({} RGs, {redirected} sent on to a new leader): p50 {:.2} ms, p99 {:.2} ms; to the same RG awake: p50 {:.2} ms, p99 {:.2} ms",
        asleep.len(),
        pct(&mut asleep, 0.5),
        pct(&mut asleep, 0.99),
        pct(&mut awake, 0.5),
        pct(&mut awake, 0.99)
    );
}

fn terminate(child: &mut Child) {
    // SIGTERM for a clean shutdown; the store flushes and exits.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
