//! Fixes placement violations: a replica on a store without the labels its objects require
//! (a DDL placement hint, or an SRE relabelling a store), two replicas of an RG on one host,
//! or replicas crowded into fewer zones than the cluster offers. Moves one replica
//! (MigrateReplica) to the store that adds the most failure-domain spread.

use topology::Violation;

use super::{Ctx, Decision, Scheduler};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;
use crate::placement::{best_store, replica_counts};

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

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let facts = super::stores::StoreFacts::of(view);
        let mut counts = replica_counts(view);
        let labelled = !ctx.objects.labels.is_empty();
        let mut out = Vec::new();
        for rg in ctx.rgs_in_scope() {
            // The common case first, on integers: distinct hosts, zones spread as far as the
            // Up stores allow, no label rules to meet.
            if !labelled && well_placed(rg, &facts) {
                continue;
            }
            if ctx.leave_alone(rg) || !ctx.healthy(rg.id) {
                continue;
            }
            if super::proposed(&out) >= ctx.config.max_proposals as usize {
                ctx.revisit(rg.id);
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
            let locs: Vec<&topology::StoreLoc> = rg
                .members
                .keys()
                .filter_map(|s| facts.get(*s).map(|f| &f.loc))
                .collect();
            let violation = match topology::placement::check(&locs, &facts.zone_reps) {
                Ok(()) => continue,
                Err(v) => v,
            };
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
                let r: Vec<&topology::StoreLoc> = rest
                    .iter()
                    .filter_map(|s| facts.get(*s).map(|f| &f.loc))
                    .collect();
                facts
                    .get(from)
                    .and_then(|f| topology::placement::score(&f.loc, &r))
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

/// Distinct hosts, and as many zones as there are replicas or Up zones, whichever is fewer:
/// what `topology::placement::check` asks, on the stores' interned domains.
fn well_placed(rg: &crate::cluster::RgInfo, facts: &super::stores::StoreFacts) -> bool {
    let mut hosts = [0u32; 8];
    let mut zones = [0u32; 8];
    let (mut n, mut distinct_zones) = (0, 0);
    if !rg.members.inline() {
        return false;
    }
    for s in rg.members.stores() {
        let Some(f) = facts.get(*s) else {
            return false;
        };
        if n == hosts.len() || hosts[..n].contains(&f.host) {
            return false;
        }
        if !zones[..n].contains(&f.zone) {
            distinct_zones += 1;
        }
        hosts[n] = f.host;
        zones[n] = f.zone;
        n += 1;
    }
    distinct_zones >= n.min(facts.zones_available)
}
