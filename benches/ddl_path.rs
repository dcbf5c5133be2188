//! The DDL path as a SQL engine meets it, at default settings with TLS: one `mc serve` (this
//! binary re-executed, so its RSS and CPU are its own) and three store nodes in this process
//! (Raft heartbeat 2 s, election timeouts 10-20 s, MC heartbeats 10 s), driven through
//! `mc::client`.
//!
//! - sequential CreateTable with 2 indexes: p50/p99 (goal p50 ≤ 50 ms, p99 ≤ 200 ms);
//! - pre-split CreateTable with `initial_regions = 256`: latency, regions/s (goal ≤ 500 ms,
//!   ≥ 2,000 regions/s);
//! - WatchRoutes: TransferLeader submitted → the new leader pushed to a watching cache;
//! - DDL storm: N CreateTable calls with 4 indexes each from 16 callers (goal ≤ 120 s for
//!   10,000): total, p50/p99 per call, RGs made, MC and store RSS, idle CPU afterwards (5 s
//!   after the storm, and once every replica sleeps).
//!
//! Run: `cargo bench --bench ddl_path` (env DDL_BENCH_SEQUENTIAL, default 200;
//! DDL_BENCH_STORM, default 10000; DDL_BENCH_CALLERS, default 16; BENCH_HIBERNATE_MS, an RG's
//! idle time before it sleeps, default 10000, 0 for never).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mc::client::Client;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;
use store_node::security::pki::TestPki;
use support::{ms, percentile};

const CHILD: &str = "DDL_BENCH_MC";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU seconds (user + system) the process has used.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn table(request_id: String, name: String, indexes: usize, regions: u32) -> CreateTableRequest {
    CreateTableRequest {
        request_id,
        database: Some(ObjectRef {
            target: Some(object_ref::Target::Path("bench".into())),
        }),
        indexes: (0..indexes)
            .map(|i| IndexSpec {
                name: format!("{name}_i{i}"),
                ..Default::default()
            })
            .collect(),
        name,
        placement: Some(PlacementHint {
            initial_regions: regions,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn summary(label: &str, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{label}: n={} p50 {} p99 {} max {}",
        lat.len(),
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
}

async fn rg_count(mc: &str) -> usize {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let mut n = 0;
    let mut page = PageRequest {
        limit: 1_000,
        page_token: String::new(),
    };
    loop {
        let r = c
            .list_rgs(ListRgsRequest {
                page: Some(page.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        n += r.rgs.len();
        match r.page {
            Some(p) if !p.next_page_token.is_empty() => page.page_token = p.next_page_token,
            _ => return n,
        }
    }
}

async fn transfer_leader(mc: &str, rg: u64, to: u64, n: usize) {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(JobServiceClient::new)
        .unwrap();
    let job = c
        .submit_job(SubmitJobRequest {
            request_id: format!("bench-transfer-{n}"),
            spec: Some(JobSpec {
                spec: Some(job_spec::Spec::TransferLeader(TransferLeaderSpec {
                    rg_id: rg,
                    to_store_id: to,
                })),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    loop {
        let j = c
            .get_job(GetJobRequest {
                job_id: job.id,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap();
        if j.state == JobState::Succeeded as i32 {
            return;
        }
        assert!(
            j.state != JobState::Failed as i32 && j.state != JobState::Cancelled as i32,
            "{j:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        support::serve_one_mc(&spec);
        return;
    }
    let sequential = env("DDL_BENCH_SEQUENTIAL", 200);
    let storm = env("DDL_BENCH_STORM", 10_000);
    let callers = env("DDL_BENCH_CALLERS", 16).max(1);
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::shared();
    let (mc_addr, mc) = support::one_mc(CHILD, dir.path());
    let mc_pid = mc.0.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stores = support::stores_reporting_to(&mc_addr, dir.path(), 3).await;
        let client = support::admin_client(&mc_addr).await;
        let mut meta = client.meta();
        loop {
            let r = meta
                .create_database(CreateDatabaseRequest {
                    request_id: "db".into(),
                    name: "bench".into(),
                })
                .await;
            // Until the stores registered, a table has nowhere to go; the database call
            // itself needs only the MC.
            if r.is_ok() && rg_count(&mc_addr).await == 0 {
                let mut c = store_node::security::pki::admin_connect(format!("http://{mc_addr}"))
                    .await
                    .map(ClusterServiceClient::new)
                    .unwrap();
                let up = c
                    .list_stores(ListStoresRequest::default())
                    .await
                    .map(|s| {
                        s.into_inner()
                            .stores
                            .iter()
                            .filter(|s| s.state == StoreState::Up as i32)
                            .count()
                    })
                    .unwrap_or(0);
                if up == 3 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Sequential CreateTable with 2 indexes.
        let mut lat = Vec::with_capacity(sequential);
        let mut first = None;
        for i in 0..sequential {
            let t = Instant::now();
            meta.create_table(table(format!("seq-{i}"), format!("seq{i}"), 2, 0))
                .await
                .unwrap();
            let took = t.elapsed();
            if first.is_none() {
                first = Some(took);
            }
            lat.push(took);
        }
        println!(
            "first CreateTable (a new RG, its leader campaigning): {}",
            ms(first.unwrap())
        );
        summary("sequential CreateTable, 2 indexes", lat);

        // Pre-split.
        let mut lat = Vec::new();
        let mut big_rg = 0;
        let mut big_key = Vec::new();
        for i in 0..5 {
            let t = Instant::now();
            let r = meta
                .create_table(table(format!("split-{i}"), format!("split{i}"), 0, 256))
                .await
                .unwrap()
                .into_inner();
            lat.push(t.elapsed());
            let id = r.table.unwrap().id;
            let routes = client.load_object(id).await.unwrap();
            assert_eq!(routes.len(), 256);
            assert!(routes.iter().all(|r| r.leader_store_id != 0));
            big_rg = routes[0].rg_id;
            big_key = topology::keys::key(topology::ObjectId(id), b"k");
        }
        let mut sorted = lat.clone();
        sorted.sort();
        summary("pre-split CreateTable, 256 regions", lat);
        println!(
            "pre-split regions/s at p50: {:.0}",
            256.0 / percentile(&sorted, 0.5).as_secs_f64()
        );

        // WatchRoutes: leader change → pushed route.
        let watcher = Client::connect(&mc_addr, pki.admin()).await.unwrap();
        let watching = watcher.watch();
        let cache = watcher.cache();
        while cache.read().unwrap().locate(&big_key).is_none() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut lat = Vec::new();
        for n in 0..20 {
            let leader = cache
                .read()
                .unwrap()
                .locate(&big_key)
                .unwrap()
                .leader_store_id;
            let to = leader % 3 + 1;
            let t = Instant::now();
            let moved = transfer_leader(&mc_addr, big_rg, to, n);
            tokio::pin!(moved);
            let mut done = false;
            loop {
                tokio::select! {
                    _ = &mut moved, if !done => done = true,
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
                if cache
                    .read()
                    .unwrap()
                    .locate(&big_key)
                    .is_some_and(|r| r.leader_store_id == to)
                {
                    lat.push(t.elapsed());
                    break;
                }
            }
            if !done {
                moved.await;
            }
        }
        summary(
            "TransferLeader submitted → new leader pushed by WatchRoutes",
            lat,
        );
        watching.abort();

        // The storm.
        let rgs_before = rg_count(&mc_addr).await;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let client = client.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut meta = client.meta();
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= storm {
                        return lat;
                    }
                    let t = Instant::now();
                    meta.create_table(table(format!("storm-{i}"), format!("storm{i}"), 4, 0))
                        .await
                        .unwrap();
                    lat.push(t.elapsed());
                }
            }));
        }
        // Progress every 10 s: a rate that falls as the cluster grows is a cost per call that
        // grows with it.
        let progress = {
            let next = next.clone();
            tokio::spawn(async move {
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let now = next.load(std::sync::atomic::Ordering::Relaxed).min(storm);
                    println!(
                        "  storm at {:>4.0} s: {now} calls, {:.0} calls/s over the last 10 s",
                        started.elapsed().as_secs_f64(),
                        (now - last) as f64 / 10.0
                    );
                    last = now;
                }
            })
        };
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        progress.abort();
        let total = started.elapsed();
        let rgs = rg_count(&mc_addr).await - rgs_before;
        println!(
            "DDL storm: {storm} CreateTable (4 indexes each) from {callers} callers in {:.1} s \
             ({:.0} calls/s); {rgs} RGs made for {} regions",
            total.as_secs_f64(),
            storm as f64 / total.as_secs_f64(),
            storm * 5
        );
        summary("storm CreateTable", lat);
        // Idle CPU over 10 s: first 5 s after the storm (RGs still awake: hibernation waits
        // 10 s of nothing), then once every replica of every store sleeps.
        let me = std::process::id();
        let idle = |what: &'static str| async move {
            let (mc0, st0) = (cpu_s(mc_pid), cpu_s(me));
            tokio::time::sleep(Duration::from_secs(10)).await;
            let (mc1, st1) = (cpu_s(mc_pid), cpu_s(me));
            println!(
                "after the storm, {what}: MC RSS {:.0} MiB, 3 stores (one process) RSS {:.0} \
                 MiB; idle CPU MC {:.1}% of a core, stores {:.1}%",
                rss_mib(mc_pid),
                rss_mib(me),
                (mc1 - mc0) * 10.0,
                (st1 - st0) * 10.0
            );
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        idle("awake").await;
        let waited = Instant::now();
        let sleeps = std::env::var("BENCH_HIBERNATE_MS").map_or(true, |v| v != "0");
        if sleeps {
            loop {
                let (asleep, all) = stores.iter().fold((0, 0), |(a, n), s| {
                    let replicas = s.store.replicas();
                    let sleeping = replicas
                        .iter()
                        .filter(|r| r.sleep_state().is_asleep())
                        .count();
                    (a + sleeping, n + replicas.len())
                });
                if asleep == all {
                    // The storm ended 15 s before the wait began (5 s settling, 10 s measured).
                    println!(
                        "every one of {all} replicas asleep {:.1} s after the storm",
                        waited.elapsed().as_secs_f64() + 15.0
                    );
                    break;
                }
                assert!(
                    waited.elapsed() < Duration::from_secs(300),
                    "only {asleep} of {all} replicas sleep"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            idle("every replica asleep").await;
        }
        for s in stores {
            s.stop().await;
        }
    });
    drop(mc);
}
