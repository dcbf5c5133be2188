//! Persisted step transitions per second: MigrateReplica jobs (6 steps each) driven
//! concurrently by the engine on the RocksDB catalog with fsync on (group commit), against an
//! in-process executor that answers Ok at once — so the figure is the engine and the catalog.
//! Each step is two durable catalog writes (dispatched, finished). Goal: 20,000 steps/s.
//!
//! Run: `cargo bench --bench job_engine_steps`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mc::catalog::raft::RaftCatalog;
use mc::clock::SystemClock;
use mc::cluster::{ClusterView, RgInfo, Role, StoreInfo, StoreState};
use mc::jobs::JobSpec;
use mc::jobs::engine::{Engine, EngineConfig};
use mc::jobs::executor::{Envelope, StepExecutor};
use mc::jobs::limits::Limits;
use mc::jobs::plan::AtomicStep;
use proto::v1::{StepOk, StepOutcome, step_outcome};

struct Instant0;

impl StepExecutor for Instant0 {
    async fn execute(&self, _: Envelope, _: &AtomicStep) -> StepOutcome {
        StepOutcome {
            result: Some(step_outcome::Result::Ok(StepOk::default())),
        }
    }
}

const JOBS: u64 = 256;

fn view() -> ClusterView {
    let mut v = ClusterView::default();
    for id in 1..=4 {
        v.put_store(StoreInfo {
            capacity_bytes: 0,
            id,
            address: String::new(),
            state: StoreState::Up,
            labels: BTreeMap::new(),
        });
    }
    for rg in 1..=JOBS {
        let members = [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
            .into_iter()
            .collect();
        v.put_rg(RgInfo {
            term: 0,
            conf_ver: 0,
            applied_index: 0,
            id: rg,
            members,
            leader: Some(1),
            regions: Default::default(),
            offline: false,
            heard: true,
        });
    }
    v
}

fn job_engine_steps(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(
        rt.block_on(RaftCatalog::open_single(dir.path())).unwrap(),
        Instant0,
        SystemClock,
        EngineConfig::default(),
    );
    // Unlimited: this measures the engine and the catalog, not the throttles.
    engine.set_limits(Limits {
        max_running_jobs: 0,
        store_steps_per_minute: 0,
        store_snapshots_in_flight: 0,
        ..Default::default()
    });
    let view = view();
    let mut group = c.benchmark_group("job_engine");
    group.throughput(Throughput::Elements(JOBS * 6));
    group.sample_size(10);
    group.bench_function("persisted_steps_256_concurrent_migrations_fsync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(async {
                    let mut ids = Vec::new();
                    for rg in 1..=JOBS {
                        ids.push(
                            engine
                                .submit(JobSpec::MigrateReplica { rg, from: 1, to: 4 }, &view)
                                .await
                                .unwrap()
                                .id,
                        );
                    }
                    let start = Instant::now();
                    let runs = ids.iter().map(|id| engine.run(*id));
                    for r in futures::future::join_all(runs).await {
                        r.unwrap();
                    }
                    start.elapsed()
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, job_engine_steps);
criterion_main!(benches);
