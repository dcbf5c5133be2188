//! CPU of a scheduling round, as the MC leader and mcsim run it (`schedule::round::Round`):
//! - a full round: every scheduler looks at every RG (a new leader's first round, a change of
//!   config or stores), in total and per scheduler;
//! - an incremental round: every scheduler runs again after 1,000 RG heartbeats changed
//!   something (a region's size in 1,000 RGs), looking at what changed.
//!
//! The view is skewed (every RG on the first half of the stores, one store Down) so the
//! balancer and the replica checker have work; stores carry zone and host labels; each RG
//! holds a table and its two indexes (one affinity group).
//!
//! Run: `cargo bench --bench schedule_round` (env SCHED_BENCH_STORES, SCHED_BENCH_RGS;
//! defaults 300 stores, 333,334 RGs of 3 regions = 1,000,002 regions).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mc::cluster::{ClusterView, RegionInfo, RgInfo, Role, StoreInfo, StoreState};
use mc::schedule::round::Round;
use mc::schedule::{Ctx, ObjectPlacement, ScheduleConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn view(stores: u64, rgs: u64) -> (ClusterView, ObjectPlacement) {
    let mut v = ClusterView::default();
    for id in 1..=stores {
        v.put_store(StoreInfo {
            id,
            address: format!("10.0.{}.{}:20160", id / 250, id % 250),
            state: if id == 2 {
                StoreState::Down
            } else {
                StoreState::Up
            },
            labels: [
                ("zone".to_string(), format!("z{}", id % 3)),
                ("host".to_string(), format!("h{id}")),
            ]
            .into(),
            capacity_bytes: 1 << 40,
        });
    }
    let mut affinity = BTreeMap::new();
    let half = (stores / 2).max(3);
    for rg in 1..=rgs {
        // Three stores of the first half, one per zone.
        let base = (rg * 3) % half;
        let members: Vec<u64> = (0..3).map(|i| 1 + (base + i) % half).collect();
        let regions: BTreeSet<u64> = (0..3).map(|i| rg * 3 + i).collect();
        for (i, r) in regions.iter().enumerate() {
            // A table and its two indexes: one affinity group per RG.
            let table = rg << 28;
            let object = if i == 0 {
                table
            } else {
                table | (i as u64) << 12
            };
            if object != table {
                affinity.insert(object, table);
            }
            v.put_region(RegionInfo {
                keys: 100_000,
                id: *r,
                rg,
                object,
                start: object.to_be_bytes().to_vec().into(),
                end: (object + 1).to_be_bytes().to_vec().into(),
                version: 1,
                size_bytes: 64 << 20,
            });
        }
        v.put_rg(RgInfo {
            term: 1,
            conf_ver: 1,
            applied_index: 0,
            id: rg,
            members: members.iter().map(|s| (*s, Role::Voter)).collect(),
            leader: members.first().copied(),
            regions: regions.into(),
            offline: false,
            heard: true,
        });
    }
    (v, ObjectPlacement::new(affinity, BTreeMap::new()))
}

/// A change of one region's size in each of `n` RGs spread over the view, as heartbeats of a
/// write workload bring.
fn heartbeats(v: &mut ClusterView, rgs: u64, n: u64, round: u64) {
    for i in 0..n {
        let rg = 1 + (i * 7_919 + round * 104_729) % rgs;
        v.update_region(rg * 3, |r| r.size_bytes += 4096);
    }
}

fn bench(c: &mut Criterion) {
    let (stores, rgs) = (
        env("SCHED_BENCH_STORES", 300),
        env("SCHED_BENCH_RGS", 333_334),
    );
    let (mut v, objects) = view(stores, rgs);
    let config = ScheduleConfig::default();
    // As the server's coordinator does before its first round.
    v.set_watch(config.watch());
    v.set_affinity(objects.affinity.clone());
    let busy = BTreeSet::new();
    let pending = Default::default();
    let mut group = c.benchmark_group(format!(
        "schedule_round/{stores}stores_{}regions",
        v.regions.len()
    ));
    group.sample_size(10);
    let mut proposals: BTreeMap<&str, usize> = BTreeMap::new();
    for mut s in mc::schedule::all() {
        let name = s.name();
        proposals.insert(name, s.run(&Ctx::full(&v, 0, &config, &objects)).len());
        group.bench_function(format!("full/{name}"), |b| {
            b.iter(|| s.run(&Ctx::full(&v, 0, &config, &objects)))
        });
    }
    group.bench_function("full/all", |b| {
        b.iter_batched(
            || Round::new(config.clone()),
            |mut round| round.plan(&v, &objects, &busy, &pending, 0).len(),
            BatchSize::LargeInput,
        )
    });
    // A round that already made its full pass, then 1,000 changed RGs per round; only the
    // round is timed, not the changes.
    let mut round = Round::new(config.clone());
    round.plan(&v, &objects, &busy, &pending, 0);
    let mut now = 0;
    group.bench_function("after_1000_heartbeats/all", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                now += 60_000;
                heartbeats(&mut v, rgs, 1_000, now);
                let started = Instant::now();
                let planned = round.plan(&v, &objects, &busy, &pending, now);
                spent += started.elapsed();
                std::hint::black_box(planned);
            }
            spent
        })
    });
    group.finish();
    let scopes: Vec<(String, u64, u64)> = round
        .status(now)
        .into_iter()
        .map(|s| (s.name, s.last_scope, s.last_cost_us))
        .collect();
    println!("decisions per scheduler in a full run: {proposals:?}");
    println!("(scheduler, RGs looked at, µs) in the last incremental round: {scopes:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
