//! Repairs RGs with a dead or missing replica: a store that is Down (silent past
//! `max_store_down_time`) or Tombstone, or a member count below the configured replicas.
//! First AddReplica on the best store (placement score, then fewest replicas), then, once
//! enough healthy replicas exist, RemoveReplica of the dead one — never the other way round,
//! so the RG never has fewer healthy replicas than before. An RG that lost its quorum cannot
//! change membership; it is reported, not touched. Disconnected stores are waited for.

use super::placement::{best_store, replica_counts};
use super::{Ctx, Decision, Scheduler};
use crate::cluster::StoreState;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct ReplicaChecker;

impl Scheduler for ReplicaChecker {
    fn name(&self) -> &'static str {
        "replica-checker"
    }

    fn priority(&self) -> Priority {
        Priority::Repair
    }

    fn default_interval_ms(&self) -> u64 {
        1_000
    }

    fn run(&self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let target = ctx.config.replicas as usize;
        let mut counts = replica_counts(view);
        let mut out = Vec::new();
        let mut proposed = 0;
        for rg in view.rgs.values() {
            if proposed >= ctx.config.max_proposals as usize {
                break;
            }
            if ctx.busy.contains(&rg.id) || rg.offline {
                continue;
            }
            // The common case first, without allocating: every replica on a live store.
            let is_dead = |s: &u64| {
                view.store(*s)
                    .is_none_or(|x| matches!(x.state, StoreState::Down | StoreState::Tombstone))
            };
            if rg.members.len() >= target && !rg.members.keys().any(is_dead) {
                continue;
            }
            let dead: Vec<u64> = rg
                .members
                .keys()
                .copied()
                .filter(|s| {
                    view.store(*s)
                        .is_none_or(|x| matches!(x.state, StoreState::Down | StoreState::Tombstone))
                })
                .collect();
            let healthy = rg.members.len() - dead.len();
            if dead.is_empty() && rg.members.len() >= target {
                continue;
            }
            let voters = rg.voters().count();
            let live_voters = rg.voters().filter(|s| !dead.contains(s)).count();
            if live_voters < voters / 2 + 1 {
                out.push(Decision::Skip {
                    subject: format!("rg/{}", rg.id),
                    reason: format!(
                        "RG {} lost its quorum ({live_voters} of {voters} voters alive); \
                         membership cannot change without unsafe recovery",
                        rg.id
                    ),
                });
                continue;
            }
            let scores = |extra: Vec<(String, f64)>| {
                let mut s = vec![
                    ("healthy_replicas".to_string(), healthy as f64),
                    ("target_replicas".to_string(), target as f64),
                    ("dead_replicas".to_string(), dead.len() as f64),
                ];
                s.extend(extra);
                s
            };
            if healthy < target {
                let alive: Vec<u64> = rg
                    .members
                    .keys()
                    .copied()
                    .filter(|s| !dead.contains(s))
                    .collect();
                let members: Vec<u64> = rg.members.keys().copied().collect();
                let required = ctx.required_labels(rg.id);
                match best_store(view, &alive, &members, &required, &counts) {
                    Some((store, score)) => {
                        let load = counts.get(&store).copied().unwrap_or(0);
                        *counts.entry(store).or_default() += 1;
                        proposed += 1;
                        out.push(Decision::Propose {
                            spec: JobSpec::AddReplica {
                                rg: rg.id,
                                store,
                                voter: true,
                            },
                            reason: format!(
                                "RG {} has {healthy} healthy replicas of {target} (dead: {dead:?}); \
                                 adding one on store {store}",
                                rg.id
                            ),
                            scores: scores(vec![
                                ("placement_score".into(), score),
                                ("store_replicas".into(), load as f64),
                            ]),
                        });
                    }
                    None => out.push(Decision::Skip {
                        subject: format!("rg/{}", rg.id),
                        reason: format!(
                            "RG {} has {healthy} healthy replicas of {target}, and no Up store \
                             on a host of its own can take another",
                            rg.id
                        ),
                    }),
                }
            } else if let Some(store) = dead.first().copied() {
                proposed += 1;
                out.push(Decision::Propose {
                    spec: JobSpec::RemoveReplica { rg: rg.id, store },
                    reason: format!(
                        "RG {} has {healthy} healthy replicas; removing the one on dead store {store}",
                        rg.id
                    ),
                    scores: scores(vec![]),
                });
            }
        }
        out
    }
}
