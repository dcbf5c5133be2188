//! Repairs RGs with a dead or missing replica: a store that is Down (silent past
//! `max_store_down_time`) or Tombstone, or a member count below the configured replicas.
//! First AddReplica on the best store (placement score, then fewest replicas), then, once
//! enough healthy replicas exist, RemoveReplica of the dead one — never the other way round,
//! so the RG never has fewer healthy replicas than before. An RG that lost its quorum cannot
//! change membership; it is reported, not touched. Disconnected stores are waited for.
//!
//! An RG with more replicas than `schedule.replicas` (a store that was Down long enough to be
//! repaired around came back before its replica was removed) loses its worst-placed one, as
//! PD's remove-extra-replica does: one outside the RG's label rules first, then a learner,
//! then one on a store that is not Up, then the one adding least to the failure domains (it
//! shares a zone, rack or host), then the one on the fullest store; never the leader while
//! another candidate is equal. A store still holding a replica of an RG that no longer lists
//! it (removed while the store was down) gets it destroyed once the store is Up again.

use super::{Ctx, Decision, Scheduler};
use crate::cluster::StoreState;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
use crate::placement::{best_store, replica_counts};

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

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let target = ctx.config.replicas as usize;
        let facts = super::stores::StoreFacts::of(view);
        let mut counts = replica_counts(view);
        let mut out = Vec::new();
        let mut proposed = 0;
        for rg in ctx.rgs_in_scope() {
            if rg.offline {
                continue;
            }
            // The common case first, without allocating: every replica on a live store.
            let fine = rg.members.len() == target
                && rg.members.inline()
                && !rg.members.stores().iter().any(|s| facts.dead(*s));
            if fine || ctx.leave_alone(rg) {
                continue;
            }
            if proposed >= ctx.config.max_proposals as usize {
                ctx.revisit(rg.id);
                continue;
            }
            if rg.members.len() >= target && !rg.members.keys().any(|s| facts.dead(*s)) {
                if rg.members.len() > target
                    && let Some(d) = remove_extra(ctx, rg, target, &counts)
                {
                    proposed += 1;
                    out.push(d);
                }
                continue;
            }
            let dead: Vec<u64> = rg
                .members
                .keys()
                .copied()
                .filter(|s| facts.dead(*s))
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
                // A dead replica goes first: it is the worst-placed of all.
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
        for (store, rg, since) in strays(ctx) {
            if proposed >= ctx.config.max_proposals as usize {
                break;
            }
            proposed += 1;
            out.push(Decision::Propose {
                spec: JobSpec::DestroyReplica { rg, store },
                reason: format!(
                    "store {store} still holds a replica of RG {rg}, which no longer lists it \
                     (removed while the store was away); destroying it"
                ),
                scores: vec![(
                    "stray_for_ms".into(),
                    ctx.now_ms.saturating_sub(since) as f64,
                )],
            });
        }
        out
    }
}

/// The extra replica to remove from an RG above its target, worst-placed first.
fn remove_extra(
    ctx: &Ctx,
    rg: &crate::cluster::RgInfo,
    target: usize,
    counts: &std::collections::HashMap<u64, usize>,
) -> Option<Decision> {
    use crate::cluster::Role;
    use crate::placement::{loc, matches_labels};
    let view = ctx.view;
    let required = ctx.required_labels(rg.id);
    let locs: Vec<(u64, topology::StoreLoc)> = rg
        .members
        .keys()
        .filter_map(|s| view.store(*s).map(|info| (*s, loc(info))))
        .collect();
    // (outside label rules, learner, not Up, -domain score, replicas on the store, leader, id):
    // the largest is removed.
    let rank = |store: u64| {
        let info = view.store(store)?;
        let others: Vec<&topology::StoreLoc> = locs
            .iter()
            .filter(|(s, _)| *s != store)
            .map(|(_, l)| l)
            .collect();
        let domain = topology::placement::score(&loc(info), &others).unwrap_or(-1.0);
        Some((
            !matches_labels(info, &required),
            rg.members.get(&store) == Some(&Role::Learner),
            info.state != StoreState::Up,
            -domain,
            counts.get(&store).copied().unwrap_or(0),
            rg.leader != Some(store),
            store,
        ))
    };
    let mut ranked: Vec<_> = rg.members.keys().filter_map(|s| rank(*s)).collect();
    ranked.sort_by(|a, b| {
        (a.0, a.1, a.2)
            .cmp(&(b.0, b.1, b.2))
            .then(a.3.total_cmp(&b.3))
            .then((a.4, a.5, a.6).cmp(&(b.4, b.5, b.6)))
    });
    let worst = ranked.last()?;
    let store = worst.6;
    // Removing a voter must leave a majority of today's voters (it always does above target,
    // but a learner-heavy RG could say otherwise).
    if crate::jobs::checks::keeps_quorum(rg, store).is_err() {
        return None;
    }
    Some(Decision::Propose {
        spec: JobSpec::RemoveReplica { rg: rg.id, store },
        reason: format!(
            "RG {} has {} replicas of {target}; removing the worst-placed, on store {store}",
            rg.id,
            rg.members.len()
        ),
        scores: vec![
            ("replicas".into(), rg.members.len() as f64),
            ("target_replicas".into(), target as f64),
            ("outside_label_rules".into(), f64::from(u8::from(worst.0))),
            ("learner".into(), f64::from(u8::from(worst.1))),
            ("store_not_up".into(), f64::from(u8::from(worst.2))),
            ("placement_score".into(), -worst.3),
            ("store_replicas".into(), worst.4 as f64),
        ],
    })
}

/// Replicas on Up stores of RGs that no longer list those stores, reported for longer than
/// the settle time (a store's report can trail a membership change by an interval), on RGs
/// heard from in this term and not held by a job, or of RGs merged away or deleted (the
/// catalog's tombstones) while the store was behind. An RG id the view knows neither way is
/// left alone: a SplitRg or CreateRg that ended in doubt may have made it.
fn strays(ctx: &Ctx) -> Vec<(u64, u64, u64)> {
    let view = ctx.view;
    view.strays
        .iter()
        .filter(|((store, rg), since)| {
            ctx.now_ms.saturating_sub(**since) >= ctx.config.stray_grace_ms
                && !ctx.busy.contains(rg)
                && view
                    .store(*store)
                    .is_some_and(|s| s.state == StoreState::Up)
                && match view.rg(*rg) {
                    Some(info) => info.heard && !info.members.contains_key(store),
                    None => view.retired.contains(rg),
                }
        })
        .map(|((store, rg), since)| (*store, *rg, *since))
        .collect()
}
