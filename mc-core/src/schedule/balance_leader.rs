//! Evens out leader counts over the Up stores: transfers the leadership of an RG from the
//! store leading the most to a voter of that RG on a store leading at least `min-diff` fewer.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Decision, Scheduler};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct BalanceLeader;

/// RGs looked at per (source, target) pair; see `run`.
const CANDIDATES: usize = 256;

impl Scheduler for BalanceLeader {
    fn name(&self) -> &'static str {
        "balance-leader"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn same_inputs_same_result(&self) -> bool {
        true
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let mut leaders = super::up_leader_counts(view);
        for (s, d) in &ctx.pending.leaders {
            if let Some(n) = leaders.get_mut(s) {
                *n = (*n as i64 + d).max(0) as usize;
            }
        }
        if leaders.len() < 2 {
            return vec![];
        }
        let min_diff = ctx.config.balance_leader_min_diff as usize;
        let loads: BTreeMap<u64, u64> = view
            .store_loads()
            .into_iter()
            .map(|(s, l)| (s, l.total()))
            .collect();
        let mean_load = loads.values().sum::<u64>() as f64 / leaders.len() as f64;
        let hot_limit = mean_load * (1.0 + ctx.config.hot_tolerance_pct as f64 / 100.0);
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < ctx.config.max_proposals as usize {
            let (&src, &src_n) = leaders
                .iter()
                .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
                .expect("two stores");
            // Among the first CANDIDATES RGs `src` leads with a voter on a store leading at
            // least `min-diff` fewer, the one whose such store leads fewest (then the
            // coldest): a few lookups per RG, where matching every target store's replicas
            // against `src`'s RGs cost a walk of both per target. RGs without such a voter do
            // not count toward the cap (a store that needs leaders may share only RGs far
            // down the list). A cap, as PD picks one region at random: a store leading 10,000
            // RGs must not cost 10,000 placement checks per move.
            let mut best: Option<(usize, u64, u64, u64)> = None;
            let mut seen = 0;
            for id in view.led_by(src) {
                if seen >= CANDIDATES {
                    break;
                }
                if used.contains(&id) || ctx.busy.contains(&id) {
                    continue;
                }
                let Some(rg) = view.rg(id) else { continue };
                if rg.leader != Some(src) || rg.offline || !rg.heard {
                    continue;
                }
                let load = view.rg_load(id).total();
                let mut candidate = false;
                for dst in rg.voters() {
                    let Some(&n) = leaders.get(&dst) else {
                        continue;
                    };
                    if dst == src || src_n - n.min(src_n) < min_diff {
                        continue;
                    }
                    candidate = true;
                    let dst_load = loads.get(&dst).copied().unwrap_or(0);
                    let fits = load == 0 || (dst_load + load) as f64 <= hot_limit;
                    if fits && best.is_none_or(|b| (n, load, id, dst) < b) {
                        best = Some((n, load, id, dst));
                    }
                }
                seen += usize::from(candidate);
            }
            let pick = best.map(|(n, _, rg, dst)| (rg, dst, n));
            let Some((rg, dst, dst_n)) = pick else {
                if out.is_empty() {
                    out.push(Decision::Skip {
                        subject: "cluster".into(),
                        reason: format!(
                            "leaders balanced: store {src} leads {src_n}; no store leading \
                             {min_diff} fewer holds a voter of its RGs"
                        ),
                    });
                }
                break;
            };
            used.insert(rg);
            *leaders.get_mut(&src).expect("counted") -= 1;
            *leaders.get_mut(&dst).expect("counted") += 1;
            out.push(Decision::Propose {
                spec: JobSpec::TransferLeader { rg, to: dst },
                reason: format!(
                    "store {src} leads {src_n} RGs, store {dst} {dst_n}; moving RG {rg}'s leader"
                ),
                scores: vec![
                    ("source_leaders".into(), src_n as f64),
                    ("target_leaders".into(), dst_n as f64),
                ],
            });
        }
        out
    }
}
