//! Reunites an affinity group spread over several RGs (after an RG split, or an index created
//! when its table's RG was full). The group's main RG is the one holding most of its regions.
//! Another RG of the group is first moved onto the main RG's stores (MigrateReplica, one
//! replica at a time), then merged into it (MergeRg) if the main RG has room; when capacity
//! forbids the merge, the RGs stay on the same stores with the same leader (TransferLeader).

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Decision, Scheduler};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
use crate::placement::replica_counts;

pub struct AffinityKeeper;

impl Scheduler for AffinityKeeper {
    fn name(&self) -> &'static str {
        "affinity-keeper"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        10_000
    }

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let groups = spread_groups(ctx);
        let counts = replica_counts(view);
        let max_regions = ctx.config.split_max_rg_regions as usize;
        let mut used = BTreeSet::new();
        let mut out = Vec::new();
        for (group, rgs) in groups.iter().filter(|(_, rgs)| rgs.len() > 1) {
            let Some((&main, _)) = rgs
                .iter()
                .max_by_key(|(rg, n)| (**n, std::cmp::Reverse(**rg)))
            else {
                continue;
            };
            let Some(main_info) = view.rg(main) else {
                continue;
            };
            for &other in rgs.keys().filter(|rg| **rg != main) {
                if super::proposed(&out) >= ctx.config.max_proposals as usize {
                    ctx.revisit(other);
                    continue;
                }
                let Some(info) = view.rg(other) else { continue };
                if [main_info, info]
                    .iter()
                    .any(|rg| used.contains(&rg.id) || ctx.leave_alone(rg) || !ctx.healthy(rg.id))
                {
                    ctx.revisit(other);
                    continue;
                }
                let main_stores: BTreeSet<u64> = main_info.members.keys().copied().collect();
                let stores: BTreeSet<u64> = info.members.keys().copied().collect();
                let subject = format!("affinity group {group}: RGs {main} and {other}");
                let decision = if main_stores != stores {
                    let from = stores.difference(&main_stores).next().copied();
                    let to = main_stores
                        .difference(&stores)
                        .min_by_key(|s| (counts.get(s).copied().unwrap_or(0), **s))
                        .copied();
                    match (from, to) {
                        (Some(from), Some(to)) => Decision::Propose {
                            spec: JobSpec::MigrateReplica {
                                rg: other,
                                from,
                                to,
                            },
                            reason: format!(
                                "{subject} are on stores {stores:?} and {main_stores:?}; moving \
                                 RG {other}'s replica from store {from} to store {to}"
                            ),
                            scores: vec![("group_rgs".into(), rgs.len() as f64)],
                        },
                        _ => Decision::Skip {
                            subject,
                            reason: "replica counts differ; the replica checker aligns them".into(),
                        },
                    }
                } else if main_info.regions.len() + info.regions.len() <= max_regions {
                    Decision::Propose {
                        spec: JobSpec::MergeRg {
                            source: other,
                            target: main,
                        },
                        reason: format!(
                            "{subject} share stores; merging RG {other} ({} regions) into RG \
                             {main} ({} regions)",
                            info.regions.len(),
                            main_info.regions.len()
                        ),
                        scores: vec![
                            ("source_regions".into(), info.regions.len() as f64),
                            ("target_regions".into(), main_info.regions.len() as f64),
                            ("max_regions".into(), max_regions as f64),
                        ],
                    }
                } else if let Some(leader) = main_info.leader.filter(|l| info.leader != Some(*l)) {
                    Decision::Propose {
                        spec: JobSpec::TransferLeader {
                            rg: other,
                            to: leader,
                        },
                        reason: format!(
                            "{subject} are too large to merge ({} + {} regions > {max_regions}); \
                             giving RG {other} the same leader store {leader}",
                            main_info.regions.len(),
                            info.regions.len()
                        ),
                        scores: vec![],
                    }
                } else {
                    continue;
                };
                if matches!(decision, Decision::Propose { .. }) {
                    used.insert(main);
                    used.insert(other);
                }
                out.push(decision);
            }
        }
        out
    }
}

/// Affinity groups whose regions are in more than one RG, each with its regions counted by
/// RG: those with an RG in scope, or on a full pass every one. The view keeps the spread
/// groups as it changes (`cluster::affinity`); a view that counts by another map than the
/// round's (a test's hand-made view) is walked object by object instead.
fn spread_groups(ctx: &Ctx) -> BTreeMap<u64, BTreeMap<u64, usize>> {
    let view = ctx.view;
    let map = &ctx.objects.affinity;
    let groups: BTreeSet<u64> = if std::sync::Arc::ptr_eq(view.affinity(), map) {
        let spread = view.spread_groups();
        match ctx.scope {
            None => spread.groups().collect(),
            Some(scope) => scope.iter().flat_map(|rg| spread.in_rg(*rg)).collect(),
        }
    } else {
        let all = view.walk_spread(map);
        match ctx.scope {
            None => all,
            Some(_) => ctx
                .rgs_in_scope()
                .flat_map(|rg| rg.regions.iter().filter_map(|r| view.region(*r)))
                .map(|r| map.root_of(r.object))
                .filter(|g| all.contains(g))
                .collect(),
        }
    };
    groups
        .into_iter()
        .map(|g| (g, view.group_rgs(map, g)))
        .filter(|(_, rgs)| rgs.len() > 1)
        .collect()
}
