//! Fixes placement violations: a replica on a store without the labels its objects require
//! (a DDL placement hint, or an SRE relabelling a store), two replicas of an RG on one host,
//! or replicas crowded into fewer zones than the cluster offers. Moves one replica
//! (MigrateReplica) to the store that adds the most failure-domain spread.

use topology::Violation;

use super::placement::{best_store, loc, replica_counts};
use super::{Ctx, Decision, Scheduler};
use crate::cluster::StoreState;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct PlacementChecker;

impl Scheduler for PlacementChecker {
    fn name(&self) -> &'static str {
        "placement-checker"
    }

    fn priority(&self) -> Priority {
        Priority::Repair
    }

    fn default_interval_ms(&self) -> u64 {
        5_000
    }

    fn run(&self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        // One store per zone is all `check` needs of the cluster (how many zones there are);
        // passing every store would cost a scan of them per RG.
        let mut zones = std::collections::BTreeMap::new();
        for s in view.stores.values().filter(|s| s.state == StoreState::Up) {
            let l = loc(s);
            zones.entry(l.zone.clone()).or_insert(l);
        }
        let all: Vec<_> = zones.into_values().collect();
        // Every store's location once, not once per RG member.
        let at: std::collections::HashMap<u64, topology::StoreLoc> =
            view.stores.values().map(|s| (s.id, loc(s))).collect();
        let mut counts = replica_counts(view);
        let mut out = Vec::new();
        for rg in view.rgs.values() {
            if out.len() >= ctx.config.max_proposals as usize {
                break;
            }
            if ctx.busy.contains(&rg.id) || !ctx.healthy(rg.id) {
                continue;
            }
            let required = ctx.required_labels(rg.id);
            if let Some(&bad) = rg.members.keys().find(|s| !ctx.allowed(rg.id, **s)) {
                let rest: Vec<u64> = rg.members.keys().copied().filter(|s| *s != bad).collect();
                let members: Vec<u64> = rg.members.keys().copied().collect();
                match best_store(view, &rest, &members, &required, &counts) {
                    Some((to, score)) => {
                        *counts.entry(to).or_default() += 1;
                        out.push(Decision::Propose {
                            spec: JobSpec::MigrateReplica {
                                rg: rg.id,
                                from: bad,
                                to,
                            },
                            reason: format!(
                                "RG {}: store {bad} lacks the required labels {required:?}; \
                                 moving its replica to store {to}",
                                rg.id
                            ),
                            scores: vec![("to_domain_score".into(), score)],
                        });
                    }
                    None => out.push(Decision::Skip {
                        subject: format!("rg/{}", rg.id),
                        reason: format!(
                            "RG {}: store {bad} lacks the required labels {required:?}, and no \
                             Up store that has them can take the replica",
                            rg.id
                        ),
                    }),
                }
                continue;
            }
            let locs: Vec<&topology::StoreLoc> =
                rg.members.keys().filter_map(|s| at.get(s)).collect();
            let violation = match topology::placement::check(&locs, &all) {
                Ok(()) => continue,
                Err(v) => v,
            };
            // The replica to move: the second on a shared host, or one of a crowded zone.
            let from = match &violation {
                Violation::SameHost { b, .. } => *b,
                Violation::ZonesNotSpread { .. } => {
                    let crowded = locs
                        .iter()
                        .find(|l| locs.iter().filter(|m| m.zone == l.zone).count() > 1)
                        .map(|l| l.zone.clone())
                        .unwrap_or_default();
                    match locs.iter().rev().find(|l| l.zone == crowded) {
                        Some(l) => l.id,
                        None => continue,
                    }
                }
            };
            let rest: Vec<u64> = rg.members.keys().copied().filter(|s| *s != from).collect();
            let members: Vec<u64> = rg.members.keys().copied().collect();
            let from_score = {
                let r: Vec<&topology::StoreLoc> = rest.iter().filter_map(|s| at.get(s)).collect();
                at.get(&from)
                    .and_then(|l| topology::placement::score(l, &r))
                    .unwrap_or(0.0)
            };
            match best_store(view, &rest, &members, &required, &counts) {
                Some((to, score)) if score > from_score => {
                    *counts.entry(to).or_default() += 1;
                    out.push(Decision::Propose {
                        spec: JobSpec::MigrateReplica {
                            rg: rg.id,
                            from,
                            to,
                        },
                        reason: format!(
                            "RG {}: {violation}; moving store {from}'s replica to store {to}",
                            rg.id
                        ),
                        scores: vec![
                            ("from_domain_score".into(), from_score),
                            ("to_domain_score".into(), score),
                        ],
                    });
                }
                _ => out.push(Decision::Skip {
                    subject: format!("rg/{}", rg.id),
                    reason: format!(
                        "RG {}: {violation}; no store would spread it further",
                        rg.id
                    ),
                }),
            }
        }
        out
    }
}
