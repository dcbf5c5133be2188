//! CPU of one scheduling round: each scheduler run once against a large view — what every
//! scheduler interval costs the MC leader, and what the simulator pays per decision round.
//! The view is skewed (every RG on the first half of the stores, one store Down) so the
//! balancer and the replica checker have work; stores carry zone and host labels.
//!
//! Run: `cargo bench --bench schedule_round` (env SCHED_BENCH_STORES, SCHED_BENCH_RGS;
//! defaults 300 stores, 100,000 RGs of 3 regions = 300,000 regions).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use criterion::{Criterion, criterion_group, criterion_main};
use mc::cluster::{ClusterView, RegionInfo, RgInfo, Role, StoreInfo, StoreState};
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
    let mut objects = ObjectPlacement::default();
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
            objects.affinity.insert(object, table);
            v.put_region(RegionInfo {
                keys: 0,
                id: *r,
                rg,
                object,
                start: object.to_be_bytes().to_vec(),
                end: (object + 1).to_be_bytes().to_vec(),
                version: 1,
                size_bytes: 64 << 20,
            });
        }
        v.put_rg(RgInfo {
            term: 0,
            conf_ver: 0,
            applied_index: 0,
            id: rg,
            members: members.iter().map(|s| (*s, Role::Voter)).collect(),
            leader: members.first().copied(),
            regions,
            offline: false,
            heard: true,
        });
    }
    (v, objects)
}

fn bench(c: &mut Criterion) {
    let (stores, rgs) = (
        env("SCHED_BENCH_STORES", 300),
        env("SCHED_BENCH_RGS", 100_000),
    );
    let (v, objects) = view(stores, rgs);
    let config = ScheduleConfig::default();
    let busy = BTreeSet::new();
    let first_seen: HashMap<u64, u64> = HashMap::new();
    let ctx = Ctx {
        view: &v,
        now_ms: 0,
        config: &config,
        busy: &busy,
        objects: &objects,
        first_seen: &first_seen,
        pending: &Default::default(),
    };
    let mut group = c.benchmark_group(format!("schedule_round/{stores}stores_{rgs}rgs"));
    group.sample_size(10);
    let mut proposals: BTreeMap<&str, usize> = BTreeMap::new();
    for s in mc::schedule::all() {
        proposals.insert(s.name(), s.run(&ctx).len());
        group.bench_function(s.name(), |b| b.iter(|| s.run(&ctx)));
    }
    group.bench_function("all", |b| {
        b.iter(|| {
            mc::schedule::all()
                .iter()
                .map(|s| s.run(&ctx).len())
                .sum::<usize>()
        })
    });
    group.finish();
    println!("decisions per scheduler in one round: {proposals:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
