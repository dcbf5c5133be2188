//! Evens out leader counts over the Up stores: transfers the leadership of an RG from the
//! store leading the most to a voter of that RG on a store leading at least `min-diff` fewer.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Decision, Scheduler};
use crate::cluster::Role;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct BalanceLeader;

impl Scheduler for BalanceLeader {
    fn name(&self) -> &'static str {
        "balance-leader"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
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
        let mut by_voter = std::collections::HashMap::new();
        let mut out = Vec::new();
        while out.len() < ctx.config.max_proposals as usize {
            let (&src, &src_n) = leaders
                .iter()
                .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
                .expect("two stores");
            let mut targets: Vec<(usize, u64)> = leaders
                .iter()
                .filter(|(s, n)| **s != src && src_n - **n >= min_diff)
                .map(|(s, n)| (*n, *s))
                .collect();
            targets.sort();
            // The RGs `src` leads, by the voter that could take each over, coldest first:
            // once per source store, not once per target tried.
            let by_voter = by_voter.entry(src).or_insert_with(|| {
                let mut m: std::collections::HashMap<u64, Vec<(u64, u64)>> = Default::default();
                for rg in view.led_by(src).filter_map(|rg| view.rg(rg)) {
                    if rg.leader != Some(src)
                        || rg.offline
                        || ctx.busy.contains(&rg.id)
                        || !rg.heard
                    {
                        continue;
                    }
                    let load = view.rg_load(rg.id).total();
                    for (s, role) in &rg.members {
                        if *s != src && *role == Role::Voter {
                            m.entry(*s).or_default().push((load, rg.id));
                        }
                    }
                }
                for v in m.values_mut() {
                    v.sort_unstable();
                }
                m
            });
            // The coldest RG moves, and never one whose traffic would make the target a hot
            // store: traffic is the hot-region scheduler's, and a count must not undo it.
            let pick = targets.iter().find_map(|(n, dst)| {
                let dst_load = loads.get(dst).copied().unwrap_or(0);
                by_voter
                    .get(dst)?
                    .iter()
                    .filter(|(_, rg)| !used.contains(rg))
                    .find(|(l, _)| *l == 0 || (dst_load + l) as f64 <= hot_limit)
                    .map(|(_, rg)| (*rg, *dst, *n))
            });
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
