//! Merges small adjacent regions of one object in one RG (MergeRegion) when together they are
//! under `merge-checker.max-region-bytes` and both are older than `min-age-ms`, so a fresh
//! split or a pre-split table is not merged back at once. Small RGs of one affinity group are
//! merged by the affinity keeper, which first puts them on the same stores.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Decision, Scheduler};
use crate::cluster::RegionInfo;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

pub struct MergeChecker;

impl Scheduler for MergeChecker {
    fn name(&self) -> &'static str {
        "merge-checker"
    }

    fn priority(&self) -> Priority {
        Priority::Balance
    }

    fn default_interval_ms(&self) -> u64 {
        30_000
    }

    fn run(&self, ctx: &Ctx) -> Vec<Decision> {
        let max = ctx.config.merge_max_region_bytes;
        if max == 0 {
            return vec![];
        }
        let old = |r: &RegionInfo| {
            ctx.first_seen
                .get(&r.id)
                .is_some_and(|t| t + ctx.config.merge_min_age_ms <= ctx.now_ms)
        };
        let mut by_object: BTreeMap<u64, Vec<&RegionInfo>> = BTreeMap::new();
        for r in ctx.view.regions.values() {
            by_object.entry(r.object).or_default().push(r);
        }
        let mut used_rgs = BTreeSet::new();
        let mut out = Vec::new();
        for regions in by_object.values_mut() {
            regions.sort_by(|a, b| a.start.cmp(&b.start));
            for pair in regions.windows(2) {
                if out.len() >= ctx.config.max_proposals as usize {
                    return out;
                }
                let (l, r) = (pair[0], pair[1]);
                let together = l.size_bytes + r.size_bytes;
                if l.end != r.start
                    || l.rg != r.rg
                    || together >= max
                    || !old(l)
                    || !old(r)
                    || ctx.busy.contains(&l.rg)
                    || used_rgs.contains(&l.rg)
                    || !ctx.healthy(l.rg)
                {
                    continue;
                }
                used_rgs.insert(l.rg);
                out.push(Decision::Propose {
                    spec: JobSpec::MergeRegion {
                        left: l.id,
                        right: r.id,
                    },
                    reason: format!(
                        "regions {} and {} of object {} are adjacent in RG {} and hold {together} \
                         bytes together (< {max})",
                        l.id, r.id, l.object, l.rg
                    ),
                    scores: vec![
                        ("left_bytes".into(), l.size_bytes as f64),
                        ("right_bytes".into(), r.size_bytes as f64),
                        ("max_bytes".into(), max as f64),
                    ],
                });
            }
        }
        out
    }
}
