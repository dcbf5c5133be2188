//! Merges small adjacent regions of one object in one RG (MergeRegion) when together they are
//! under `merge-checker.max-region-bytes` and both have been seen for `min-age-ms`, so a
//! fresh split or a pre-split table is not merged back at once, and not while together they
//! serve more than half the split checker's load limit (a hot spot split for its load would
//! be merged and split again, over and over). Small RGs of one affinity
//! group are merged by the affinity keeper, which first puts them on the same stores.
//!
//! It looks at the regions of the RGs in scope, by object and start key. The first time it
//! sees a region as half of a candidate pair is that region's age; a pair too young is looked
//! at again when it comes of age.

use std::collections::{BTreeMap, HashMap};

use super::{Ctx, Decision, Scheduler};
use crate::cluster::{RegionInfo, RgInfo};
use crate::ids::RegionId;
use crate::jobs::JobSpec;
use crate::jobs::queue::Priority;

#[derive(Default)]
pub struct MergeChecker {
    /// When each region was first seen as half of a candidate pair.
    seen: HashMap<RegionId, u64>,
    /// `seen`'s size after it was last pruned of regions the view no longer has.
    pruned_at: usize,
}

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

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let max = ctx.config.merge_max_region_bytes;
        if max == 0 {
            return vec![];
        }
        let view = ctx.view;
        let mut out = Vec::new();
        let rgs: Vec<&RgInfo> = match ctx.scope {
            // A full pass finds RGs with small regions from the view's set of small regions
            // (when it watches at least this size), else from every region in table order.
            None => {
                let mut with_small: Vec<u64> = match view.watched() {
                    Some((w, small, _)) if w.small_bytes >= max => small
                        .iter()
                        .filter_map(|id| view.region(*id))
                        .filter(|r| r.size_bytes < max)
                        .map(|r| r.rg)
                        .collect(),
                    _ => view
                        .regions
                        .values()
                        .filter(|r| r.size_bytes < max)
                        .map(|r| r.rg)
                        .collect(),
                };
                with_small.sort_unstable();
                with_small.dedup();
                with_small.iter().filter_map(|id| view.rg(*id)).collect()
            }
            Some(_) => ctx.rgs_in_scope().collect(),
        };
        for rg in rgs {
            if rg.regions.len() < 2 {
                continue;
            }
            let pairs = self.pairs(ctx, rg);
            if pairs.is_empty() || ctx.leave_alone(rg) || !ctx.healthy(rg.id) {
                continue;
            }
            if super::proposed(&out) >= ctx.config.max_proposals as usize {
                ctx.revisit(rg.id);
                continue;
            }
            let mut proposed = false;
            for (l, r, ready_at) in pairs {
                if ready_at > ctx.now_ms {
                    ctx.revisit_at(rg.id, ready_at);
                    continue;
                }
                if proposed {
                    // One merge per RG per run; the next one after this one's effect.
                    ctx.revisit(rg.id);
                    break;
                }
                proposed = true;
                let together = l.size_bytes + r.size_bytes;
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
        if self.seen.len() > 2 * self.pruned_at.max(1024) {
            self.seen.retain(|id, _| view.regions.contains_key(id));
            self.pruned_at = self.seen.len();
        }
        out
    }
}

impl MergeChecker {
    /// Adjacent pairs of one object's regions in `rg`, together under the limit, with when
    /// both will have been seen for `min-age-ms`.
    fn pairs<'v>(
        &mut self,
        ctx: &Ctx<'v>,
        rg: &RgInfo,
    ) -> Vec<(&'v RegionInfo, &'v RegionInfo, u64)> {
        let max = ctx.config.merge_max_region_bytes;
        // A pair serving more than half the split checker's load limit stays split: a region
        // split for its load is small, and merged back it would be split again at once, every
        // `min-age-ms` while the hot spot lasts. Half, so a load near the limit does not flap.
        let hot_limit = ctx.config.split_region_max_bytes_per_sec / 2;
        let load = |r: &RegionInfo| ctx.view.loads.get(&r.id).map_or(0, |l| l.total());
        let hot = |l: &RegionInfo, r: &RegionInfo| {
            ctx.config.split_region_max_bytes_per_sec > 0 && load(l) + load(r) > hot_limit
        };
        let mut by_object: BTreeMap<u64, Vec<&'v RegionInfo>> = BTreeMap::new();
        for r in rg.regions.iter().filter_map(|r| ctx.view.region(*r)) {
            if r.size_bytes < max {
                by_object.entry(r.object).or_default().push(r);
            }
        }
        let mut out = Vec::new();
        for regions in by_object.values_mut() {
            regions.sort_by(|a, b| a.start.cmp(&b.start));
            for pair in regions.windows(2) {
                let (l, r) = (pair[0], pair[1]);
                if l.end != r.start || l.size_bytes + r.size_bytes >= max || hot(l, r) {
                    continue;
                }
                let mut seen = |id| *self.seen.entry(id).or_insert(ctx.now_ms);
                let ready = seen(l.id).max(seen(r.id)) + ctx.config.merge_min_age_ms;
                out.push((l, r, ready));
            }
        }
        out
    }
}
