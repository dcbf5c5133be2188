//! Splits an RG that holds more regions than `split-checker.max-rg-regions` with SplitRg,
//! moving whole affinity groups (never part of one) to the new RG until about half the
//! regions moved. An RG that is one affinity group is left whole and reported. The new RG's
//! id is allocated when the proposal becomes a job (`new_rg` 0 here).
//!
//! Splitting a region by size needs a split key from the store (its middle key); region
//! heartbeats do not carry one yet, so region splits stay with SREs (`SplitRegion` jobs).

use std::collections::BTreeMap;

use super::{Ctx, Decision, Scheduler};
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct SplitChecker;

impl Scheduler for SplitChecker {
    fn name(&self) -> &'static str {
        "split-checker"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        10_000
    }

    fn run(&self, ctx: &Ctx) -> Vec<Decision> {
        let view = ctx.view;
        let max = ctx.config.split_max_rg_regions as usize;
        let mut out = Vec::new();
        for rg in view.rgs.values() {
            if out.len() >= ctx.config.max_proposals as usize {
                break;
            }
            if rg.regions.len() <= max || ctx.busy.contains(&rg.id) || !ctx.healthy(rg.id) {
                continue;
            }
            let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for r in rg.regions.iter().filter_map(|r| view.region(*r)) {
                groups.entry(ctx.group_of(r.object)).or_default().push(r.id);
            }
            if groups.len() < 2 {
                out.push(Decision::Skip {
                    subject: format!("rg/{}", rg.id),
                    reason: format!(
                        "RG {} holds {} regions (> {max}) of one affinity group; not split",
                        rg.id,
                        rg.regions.len()
                    ),
                });
                continue;
            }
            let half = rg.regions.len() / 2;
            let mut moving = Vec::new();
            let mut moved_groups = 0;
            // The last groups (highest ids, usually the newest objects) move.
            for regions in groups.values().rev() {
                if moving.len() >= half || moved_groups + 1 == groups.len() {
                    break;
                }
                moving.extend(regions.iter().copied());
                moved_groups += 1;
            }
            moving.sort();
            out.push(Decision::Propose {
                spec: JobSpec::SplitRg {
                    rg: rg.id,
                    new_rg: 0,
                    regions: moving.clone(),
                },
                reason: format!(
                    "RG {} holds {} regions (> {max}); moving {} regions of {moved_groups} \
                     whole affinity groups to a new RG",
                    rg.id,
                    rg.regions.len(),
                    moving.len()
                ),
                scores: vec![
                    ("regions".into(), rg.regions.len() as f64),
                    ("max_regions".into(), max as f64),
                    ("affinity_groups".into(), groups.len() as f64),
                ],
            });
        }
        out
    }
}
