//! Reunites an affinity group spread over several RGs (after an RG split, or an index created
//! when its table's RG was full). The group's main RG is the one holding most of its regions.
//! Another RG of the group is first moved onto the main RG's stores (MigrateReplica, one
//! replica at a time), then merged into it (MergeRg) if the main RG has room; when capacity
//! forbids the merge, the RGs stay on the same stores with the same leader (TransferLeader).

use std::collections::{BTreeMap, BTreeSet};

use super::placement::replica_counts;
use super::{Ctx, Decision, Scheduler};
use crate::cluster::dense::FastMap;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

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
/// RG: those with an RG in scope, or on a full pass every one (read off the view's object
/// index, one entry per object, not per region).
fn spread_groups(ctx: &Ctx) -> BTreeMap<u64, BTreeMap<u64, usize>> {
    let view = ctx.view;
    let mut out: BTreeMap<u64, BTreeMap<u64, usize>> = BTreeMap::new();
    let mut add = |group: u64, rgs: &[(u64, u32)]| {
        let counts = out.entry(group).or_default();
        for (rg, n) in rgs {
            *counts.entry(*rg).or_default() += *n as usize;
        }
    };
    let mut groups = BTreeSet::new();
    match ctx.scope {
        None => {
            if !spread_by_runs(ctx, &mut groups) {
                groups.clear();
                spread_by_map(ctx, &mut groups);
            }
        }
        Some(_) => {
            for rg in ctx.rgs_in_scope() {
                for r in rg.regions.iter().filter_map(|r| view.region(*r)) {
                    groups.insert(ctx.group_of(r.object));
                }
            }
        }
    }
    for group in groups {
        for object in ctx.objects.members(group) {
            add(group, view.object_rgs(object));
        }
    }
    out.retain(|_, rgs| rgs.len() > 1);
    out
}

/// The group of each object, walking the objects and the affinity map side by side (both in id
/// order): no lookup per object.
fn objects_with_groups<'a>(ctx: &'a Ctx) -> impl Iterator<Item = (u64, &'a [(u64, u32)])> + 'a {
    let mut affinity = ctx.objects.affinity.iter().peekable();
    ctx.view.objects_in(0..=u64::MAX).map(move |(object, rgs)| {
        while affinity.next_if(|(o, _)| **o < object).is_some() {}
        let group = match affinity.peek() {
            Some((o, root)) if **o == object => **root,
            _ => object,
        };
        (group, rgs)
    })
}

/// Groups in more than one RG, when every group's objects are one run of ids (a table's
/// subtree is one id range, and a group is a table with its indexes): a run ends where the
/// group changes. False when a group comes back after another (groups out of id order): the
/// caller then counts with a map.
fn spread_by_runs(ctx: &Ctx, groups: &mut BTreeSet<u64>) -> bool {
    // (group, its RG while every object so far is whole in that one RG, or None: spread)
    let mut run: Option<(u64, Option<u64>)> = None;
    for (group, rgs) in objects_with_groups(ctx) {
        let one = match rgs {
            [(rg, _)] => Some(*rg),
            _ => None,
        };
        match &mut run {
            Some((g, rg)) if *g == group => {
                if *rg != one {
                    *rg = None;
                }
            }
            Some((g, _)) if *g > group => return false,
            _ => {
                if let Some((g, None)) = run {
                    groups.insert(g);
                }
                run = Some((group, one));
            }
        }
    }
    if let Some((g, None)) = run {
        groups.insert(g);
    }
    true
}

/// Groups in more than one RG, for any order of groups: the RG of each group seen whole so
/// far kept in a map.
fn spread_by_map(ctx: &Ctx, groups: &mut BTreeSet<u64>) {
    let mut single: FastMap<u64, u64> = FastMap::default();
    for (group, rgs) in objects_with_groups(ctx) {
        match (rgs, single.entry(group)) {
            ([(rg, _)], std::collections::hash_map::Entry::Vacant(e)) => {
                e.insert(*rg);
            }
            ([(rg, _)], std::collections::hash_map::Entry::Occupied(e)) if e.get() == rg => {}
            _ => {
                groups.insert(group);
            }
        }
    }
}
