//! Evens out replica counts over the Up stores. Moves one RG replica (MigrateReplica: learner
//! first, so the RG never drops below its voters) from the fullest store to the emptiest while
//! their counts differ by at least `min-diff`. Whole RGs move, so the affinity groups inside
//! an RG stay together. A move never lowers the RG's failure-domain spread; among the movable
//! RGs the smallest goes first (fewest bytes to copy).

use std::collections::BTreeSet;

use super::placement::loc;
use super::{Ctx, Decision, Scheduler, up_store_counts};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct BalanceReplica;

impl Scheduler for BalanceReplica {
    fn name(&self) -> &'static str {
        "balance-replica"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let mut counts = up_store_counts(view);
        if counts.len() < 2 {
            return vec![];
        }
        let mean = counts.values().sum::<usize>() as f64 / counts.len() as f64;
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < ctx.config.max_proposals as usize {
            let (&src, &src_n) = counts
                .iter()
                .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
                .expect("two stores");
            let (&dst, &dst_n) = counts
                .iter()
                .min_by_key(|(id, n)| (**n, **id))
                .expect("two stores");
            let gap = src_n - dst_n;
            if gap < ctx.config.balance_replica_min_diff as usize {
                if out.is_empty() {
                    out.push(Decision::Skip {
                        subject: "cluster".into(),
                        reason: format!(
                            "replicas balanced: store {src} has {src_n}, store {dst} has {dst_n} \
                             (gap {gap} < {})",
                            ctx.config.balance_replica_min_diff
                        ),
                    });
                }
                break;
            }
            let dst_loc = view.store(dst).map(loc);
            let candidate = view
                .rgs
                .values()
                .filter(|rg| rg.members.contains_key(&src) && !rg.members.contains_key(&dst))
                .filter(|rg| !ctx.busy.contains(&rg.id) && !used.contains(&rg.id))
                .filter(|rg| ctx.healthy(rg.id) && !rg.offline)
                .filter_map(|rg| {
                    let rest: Vec<_> = rg
                        .members
                        .keys()
                        .filter(|s| **s != src)
                        .filter_map(|s| view.store(*s))
                        .map(loc)
                        .collect();
                    let rest: Vec<_> = rest.iter().collect();
                    let from = topology::placement::score(&loc(view.store(src)?), &rest)?;
                    let to = topology::placement::score(dst_loc.as_ref()?, &rest)?;
                    (to >= from).then(|| (view.rg_bytes(rg.id), rg.id, from, to))
                })
                .min_by_key(|(bytes, id, _, _)| (*bytes, *id));
            let Some((bytes, rg, from_score, to_score)) = candidate else {
                out.push(Decision::Skip {
                    subject: format!("store/{src}"),
                    reason: format!(
                        "store {src} has {src_n} replicas and store {dst} {dst_n}, but no RG can \
                         move between them (busy, unhealthy, already there or a worse placement)"
                    ),
                });
                break;
            };
            used.insert(rg);
            *counts.get_mut(&src).expect("counted") -= 1;
            *counts.get_mut(&dst).expect("counted") += 1;
            out.push(Decision::Propose {
                spec: JobSpec::MigrateReplica {
                    rg,
                    from: src,
                    to: dst,
                },
                reason: format!(
                    "store {src} holds {src_n} replicas, store {dst} {dst_n} (mean {mean:.1}); \
                     moving RG {rg} ({bytes} bytes)"
                ),
                scores: vec![
                    ("source_replicas".into(), src_n as f64),
                    ("target_replicas".into(), dst_n as f64),
                    ("mean_replicas".into(), mean),
                    ("rg_bytes".into(), bytes as f64),
                    ("source_domain_score".into(), from_score),
                    ("target_domain_score".into(), to_score),
                ],
            });
        }
        out
    }
}
