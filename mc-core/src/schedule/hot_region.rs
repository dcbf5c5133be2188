//! Spreads traffic: when the store serving the most (the leaders' read and write bytes per
//! second, from region heartbeats) serves more than `tolerance-pct` above the mean and more
//! than `min-bytes-per-sec`, the hottest RG it leads moves its leadership to the coolest voter
//! that ends up cooler than the hot store was; when no voter qualifies, its replica moves to
//! the coolest store (MigrateReplica), placement permitting. The reason names the hottest
//! object of that RG, from loads aggregated up the object tree.

use std::collections::BTreeMap;

use super::{Ctx, Decision, Scheduler};
use crate::cluster::{Role, StoreState};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
use crate::placement::loc;

pub struct HotRegion;

impl Scheduler for HotRegion {
    fn name(&self) -> &'static str {
        "hot-region"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn same_inputs_same_result(&self) -> bool {
        true
    }

    fn default_interval_ms(&self) -> u64 {
        10_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        if view.loads.is_empty() {
            return vec![];
        }
        let loads: BTreeMap<u64, u64> = view
            .stores
            .values()
            .filter(|s| s.state == StoreState::Up)
            .map(|s| (s.id, view.store_load(s.id).total()))
            .collect();
        if loads.len() < 2 {
            return vec![];
        }
        let mean = loads.values().sum::<u64>() as f64 / loads.len() as f64;
        let (&hot, &hot_load) = loads
            .iter()
            .max_by_key(|(id, l)| (**l, std::cmp::Reverse(**id)))
            .expect("two stores");
        let limit = mean * (1.0 + ctx.config.hot_tolerance_pct as f64 / 100.0);
        if (hot_load as f64) <= limit || hot_load < ctx.config.hot_min_bytes_per_sec {
            return vec![Decision::Skip {
                subject: "cluster".into(),
                reason: format!(
                    "no hot store: the busiest, store {hot}, serves {hot_load} B/s (mean {mean:.0}, \
                     limit {limit:.0}, floor {})",
                    ctx.config.hot_min_bytes_per_sec
                ),
            }];
        }
        let mut rgs: Vec<(u64, u64)> = view
            .led_by(hot)
            .filter_map(|rg| view.rg(rg))
            .filter(|rg| rg.leader == Some(hot) && !rg.offline)
            .filter(|rg| !ctx.busy.contains(&rg.id) && rg.heard && ctx.healthy(rg.id))
            .map(|rg| (view.rg_load(rg.id).total(), rg.id))
            .filter(|(l, _)| *l > 0)
            .collect();
        rgs.sort_by_key(|(l, id)| (std::cmp::Reverse(*l), *id));
        let counts = ctx.replica_counts();
        for (rg_load, rg) in rgs {
            let info = view.rg(rg).expect("listed");
            // The object whose regions here serve the most (for the log).
            let mut by_object: BTreeMap<u64, u64> = BTreeMap::new();
            for r in info.regions.iter().filter_map(|r| view.region(*r)) {
                let load = view.loads.get(&r.id).map(|l| l.total()).unwrap_or(0);
                *by_object.entry(r.object).or_default() += load;
            }
            let hottest = by_object
                .into_iter()
                .map(|(o, l)| (l, o))
                .max()
                .map(|(l, o)| format!("object {o} ({l} B/s here)"))
                .unwrap_or_default();
            let scores = vec![
                ("hot_store_bytes_per_sec".into(), hot_load as f64),
                ("mean_bytes_per_sec".into(), mean),
                ("rg_bytes_per_sec".into(), rg_load as f64),
            ];
            // A voter that stays cooler than the hot store was, even with this RG's traffic.
            let voter = info
                .members
                .iter()
                .filter(|(s, role)| **s != hot && **role == Role::Voter)
                .filter_map(|(s, _)| loads.get(s).map(|l| (*l, *s)))
                .filter(|(l, _)| l + rg_load < hot_load)
                .min();
            if let Some((to_load, to)) = voter {
                return vec![Decision::Propose {
                    spec: JobSpec::TransferLeader { rg, to },
                    reason: format!(
                        "store {hot} serves {hot_load} B/s (mean {mean:.0}); RG {rg} ({rg_load} \
                         B/s, hottest {hottest}) moves its leader to store {to} ({to_load} B/s)"
                    ),
                    scores,
                }];
            }
            let rest: Vec<_> = info
                .members
                .keys()
                .filter(|s| **s != hot)
                .filter_map(|s| view.store(*s))
                .map(loc)
                .collect();
            let rest: Vec<_> = rest.iter().collect();
            let from_score = view
                .store(hot)
                .and_then(|s| topology::placement::score(&loc(s), &rest))
                .unwrap_or(0.0);
            // Only to a store holding fewer replicas than the hot one, so the replica balancer
            // has no reason to move it back.
            let hot_count = counts.get(&hot).copied().unwrap_or(0);
            let target = loads
                .iter()
                .filter(|(s, l)| !info.members.contains_key(s) && **l + rg_load < hot_load)
                .filter(|(s, _)| counts.get(s).copied().unwrap_or(usize::MAX) < hot_count)
                .filter(|(s, _)| ctx.allowed(rg, **s))
                .filter_map(|(s, l)| {
                    let score = topology::placement::score(&loc(view.store(*s)?), &rest)?;
                    (score >= from_score).then_some((*l, *s))
                })
                .min();
            if let Some((to_load, to)) = target {
                return vec![Decision::Propose {
                    spec: JobSpec::MigrateReplica { rg, from: hot, to },
                    reason: format!(
                        "store {hot} serves {hot_load} B/s (mean {mean:.0}) and no voter of RG \
                         {rg} ({rg_load} B/s, hottest {hottest}) is cool enough; moving its \
                         replica to store {to} ({to_load} B/s)"
                    ),
                    scores,
                }];
            }
        }
        vec![Decision::Skip {
            subject: format!("store/{hot}"),
            reason: format!(
                "store {hot} is hot ({hot_load} B/s, mean {mean:.0}) but none of its RGs can move \
                 its traffic to a cooler store"
            ),
        }]
    }
}
