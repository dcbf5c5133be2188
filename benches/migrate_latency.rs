//! Latency of an empty-RG MigrateReplica end to end: the MC's engine (RocksDB catalog, fsync)
//! drives six steps over gRPC against real store nodes on loopback. The replica moves back and
//! forth between stores 1 and 4 of an RG on {1,2,3}. Goal: p50 at most 50 ms.
//!
//! Run: `cargo bench --bench migrate_latency` (env MIGRATE_BENCH_RUNS, default 40).

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mc::catalog::raft::RaftCatalog;
use mc::clock::SystemClock;
use mc::cluster::{ClusterView, RgInfo, Role, StoreInfo, StoreState};
use mc::jobs::JobSpec;
use mc::jobs::engine::{Engine, EngineConfig, Progress};
use mc::jobs::grpc_executor::GrpcExecutor;
use mc::jobs::state::JobState;
use store_node::store::RaftTuning;
use support::*;

fn main() {
    let runs: usize = std::env::var("MIGRATE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let plain = migrations(Mode::Plaintext, runs).await;
        let tls = migrations(Mode::Tls, runs).await;
        println!(
            "tls/plaintext p50 latency {:.2} (throughput ratio {:.2})",
            tls.as_secs_f64() / plain.as_secs_f64(),
            plain.as_secs_f64() / tls.as_secs_f64()
        );
    });
}

/// `runs` migrations in `mode`; returns their p50.
async fn migrations(mode: Mode, runs: usize) -> std::time::Duration {
    {
        let dir = tempfile::tempdir().unwrap();
        let raft = RaftTuning {
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            ..Default::default()
        };
        let mut nodes = Vec::new();
        for id in 1..=4 {
            nodes.push(start_store_in(mode, id, dir.path(), raft.clone()).await);
        }
        let refs: Vec<_> = nodes[..3].iter().collect();
        create_rg(&refs, 1, b"a", b"b").await;
        let mut view = ClusterView::default();
        for n in &nodes {
            let id = n.store.id();
            view.put_store(StoreInfo {
                capacity_bytes: 0,
                id,
                address: n.addr.to_string(),
                state: StoreState::Up,
                labels: BTreeMap::new(),
            });
        }
        let members = |a: u64| {
            [(a, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
                .into_iter()
                .collect()
        };
        view.put_rg(RgInfo {
            term: 0,
            conf_ver: 0,
            applied_index: 0,
            id: 1,
            members: members(1),
            leader: None,
            regions: Default::default(),
            offline: false,
            heard: true,
        });
        let view = Arc::new(RwLock::new(view));
        let catalog = RaftCatalog::open_single(&dir.path().join("catalog"))
            .await
            .unwrap();
        let engine = Engine::new(
            catalog,
            GrpcExecutor::new(
                view.clone(),
                mode.security(store_node::security::Identity::Mc(1)),
                0,
            ),
            SystemClock,
            EngineConfig::default(),
        );
        let mut latencies = Vec::new();
        let (mut from, mut to) = (1, 4);
        for _ in 0..runs {
            let snapshot = view.read().unwrap().clone();
            let t = Instant::now();
            let job = engine
                .submit(JobSpec::MigrateReplica { rg: 1, from, to }, &snapshot)
                .await
                .unwrap();
            let progress = engine.run(job.id).await.unwrap();
            latencies.push(t.elapsed());
            assert_eq!(
                progress,
                Progress::Stopped(JobState::Succeeded),
                "{:?}",
                engine.job(job.id).unwrap().last_error
            );
            // As the RG heartbeat would report it.
            view.write()
                .unwrap()
                .update_rg(1, |r| r.members = members(to));
            std::mem::swap(&mut from, &mut to);
        }
        latencies.sort();
        println!(
            "empty-RG MigrateReplica over loopback ({}), {runs} runs: p50 {}  p99 {}  min {}  max {}",
            mode.name(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies[0]),
            ms(*latencies.last().unwrap())
        );
        for n in nodes {
            n.stop().await;
        }
        percentile(&latencies, 0.5)
    }
}
