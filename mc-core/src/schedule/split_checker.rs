//! Splits an RG with SplitRg, moving whole affinity groups (never part of one) to the new RG:
//! one that holds more regions than `split-checker.max-rg-regions`, about half its regions;
//! and one shared by several groups (the DDL path packs small tables together) where one
//! group grew past `max-group-bytes` or `max-group-bytes-per-sec`: that group, alone. An RG
//! that is one affinity group is left whole and reported. The new RG's id is allocated when
//! the proposal becomes a job (`new_rg` 0 here).
//!
//!
//! A region above `max-region-bytes` or `max-region-keys`, or serving more than
//! `max-region-bytes-per-sec`, is split (SplitRegion, metadata only: both halves stay in its RG,
//! next to the other regions of its table and indexes) at the key its store reports near the
//! middle of its bytes; one without a reported key waits for one. One split per RG per run.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Decision, Scheduler};
use crate::cluster::RegionInfo;
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

    fn run(&mut self, ctx: &Ctx) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut used = BTreeSet::new();
        split_rgs(ctx, &mut out, &mut used);
        split_regions(ctx, &mut out, &mut used);
        out
    }
}

/// RGs with too many regions, or a group grown out of a shared RG: SplitRg.
fn split_rgs(ctx: &Ctx, out: &mut Vec<Decision>, used: &mut BTreeSet<u64>) {
    let view = ctx.view;
    let max = ctx.config.split_max_rg_regions as usize;
    let (max_bytes, max_rate) = (
        ctx.config.split_group_max_bytes,
        ctx.config.split_group_max_bytes_per_sec,
    );
    let over = |t: &crate::cluster::index::RgTotals| {
        (max_bytes > 0 && t.bytes > max_bytes) || (max_rate > 0 && t.load.total() > max_rate)
    };
    let rgs: Vec<&crate::cluster::RgInfo> = match ctx.scope {
        // A full pass: RGs with many regions, and RGs whose totals pass a group's limit (read
        // off the per-RG totals in id order, not summed per RG).
        None => {
            let mut ids: BTreeSet<u64> = view
                .rgs
                .values()
                .filter(|rg| rg.regions.len() > max)
                .map(|rg| rg.id)
                .collect();
            ids.extend(
                view.all_rg_totals()
                    .filter(|(_, t)| over(t))
                    .map(|(id, _)| id),
            );
            ids.iter().filter_map(|id| view.rg(*id)).collect()
        }
        Some(_) => ctx.rgs_in_scope().collect(),
    };
    for rg in rgs {
        // Only an RG above a limit as a whole can hold a group above it.
        let crowded = rg.regions.len() > max;
        let grown = rg.regions.len() >= 2 && over(&view.rg_totals(rg.id));
        if !(crowded || grown) || ctx.leave_alone(rg) || !ctx.healthy(rg.id) {
            continue;
        }
        if super::proposed(out) >= ctx.config.max_proposals as usize {
            ctx.revisit(rg.id);
            continue;
        }
        let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for r in rg.regions.iter().filter_map(|r| view.region(*r)) {
            groups.entry(ctx.group_of(r.object)).or_default().push(r.id);
        }
        if !crowded {
            if let Some(d) = grown_group(ctx, rg.id, &groups) {
                used.insert(rg.id);
                out.push(d);
            }
            continue;
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
        used.insert(rg.id);
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
}

/// Regions too large or too busy: SplitRegion at the key their store reported. Sizes come
/// with heartbeats, which log their RG as changed; traffic is not logged, so the (sparse)
/// table of regions with traffic is read whole.
fn split_regions(ctx: &Ctx, out: &mut Vec<Decision>, used: &mut BTreeSet<u64>) {
    let view = ctx.view;
    let c = ctx.config;
    let too_big = |r: &RegionInfo| {
        (c.split_region_max_bytes > 0 && r.size_bytes > c.split_region_max_bytes)
            || (c.split_region_max_keys > 0 && r.keys > c.split_region_max_keys)
    };
    let watched = view.watched().filter(|(w, _, _)| {
        // The view's set of large regions holds every region this config calls too big.
        (c.split_region_max_bytes == 0 || w.large_bytes <= c.split_region_max_bytes)
            && (c.split_region_max_keys == 0 || w.large_keys <= c.split_region_max_keys)
    });
    let mut candidates: Vec<&RegionInfo> = match (ctx.scope, watched) {
        // A full pass reads the view's set of large regions, or every region in table order.
        (None, Some((_, _, large))) => large
            .iter()
            .filter_map(|id| view.region(*id))
            .filter(|r| too_big(r))
            .collect(),
        (None, None) => view.regions.values().filter(|r| too_big(r)).collect(),
        (Some(_), _) => ctx
            .rgs_in_scope()
            .flat_map(|rg| rg.regions.iter().filter_map(|r| view.region(*r)))
            .filter(|r| too_big(r))
            .collect(),
    };
    // One split per RG per run (its lock): the largest first, so a slow grower is not
    // starved by a stream of smaller ones in the same RG.
    candidates.sort_by_key(|r| (std::cmp::Reverse(r.size_bytes), r.id));
    if c.split_region_max_bytes_per_sec > 0 {
        candidates.extend(
            view.loads
                .iter()
                .filter(|(_, l)| l.total() > c.split_region_max_bytes_per_sec)
                .filter_map(|(id, _)| view.region(*id))
                .filter(|r| !too_big(r)),
        );
    }
    for r in candidates {
        let Some(rg) = view.rg(r.rg) else { continue };
        if ctx.leave_alone(rg) || !ctx.healthy(rg.id) {
            continue;
        }
        if used.contains(&rg.id) || super::proposed(out) >= c.max_proposals as usize {
            ctx.revisit(rg.id);
            continue;
        }
        let rate = view.loads.get(&r.id).map(|l| l.total()).unwrap_or(0);
        let why = if c.split_region_max_bytes > 0 && r.size_bytes > c.split_region_max_bytes {
            format!(
                "holds {} bytes (> {})",
                r.size_bytes, c.split_region_max_bytes
            )
        } else if c.split_region_max_keys > 0 && r.keys > c.split_region_max_keys {
            format!("holds {} keys (> {})", r.keys, c.split_region_max_keys)
        } else {
            format!("serves {rate} B/s (> {})", c.split_region_max_bytes_per_sec)
        };
        // The key must still lie strictly inside the region (a report may predate a split).
        let key = view
            .split_keys
            .get(&r.id)
            .filter(|k| k.as_slice() > r.start.as_slice() && r.contains(k));
        let Some(key) = key else {
            out.push(Decision::Skip {
                subject: format!("region/{}", r.id),
                reason: format!(
                    "region {} {why}, but its store reported no split key inside it yet",
                    r.id
                ),
            });
            continue;
        };
        used.insert(rg.id);
        out.push(Decision::Propose {
            spec: JobSpec::SplitRegion {
                region: r.id,
                at: key.clone(),
                new_region: 0,
            },
            reason: format!(
                "region {} of object {} in RG {} {why}; splitting it at the key its store \
                 reported near its middle",
                r.id, r.object, r.rg
            ),
            scores: vec![
                ("region_bytes".into(), r.size_bytes as f64),
                ("region_keys".into(), r.keys as f64),
                ("region_bytes_per_sec".into(), rate as f64),
            ],
        });
    }
}

/// The largest group of a shared RG once it outgrew sharing (by size, else by traffic): moved
/// alone to an RG of its own, so the neighbours it was packed with stay small and cheap.
fn grown_group(ctx: &Ctx, rg: u64, groups: &BTreeMap<u64, Vec<u64>>) -> Option<Decision> {
    if groups.len() < 2 {
        return None;
    }
    let max_bytes = ctx.config.split_group_max_bytes;
    let max_rate = ctx.config.split_group_max_bytes_per_sec;
    let measure = |regions: &Vec<u64>| -> (u64, u64) {
        regions.iter().fold((0, 0), |(bytes, rate), id| {
            let size = ctx.view.region(*id).map(|r| r.size_bytes).unwrap_or(0);
            let load = ctx.view.loads.get(id).map(|l| l.total()).unwrap_or(0);
            (bytes.saturating_add(size), rate.saturating_add(load))
        })
    };
    let (group, regions, bytes, rate) = groups
        .iter()
        .map(|(g, regions)| {
            let (bytes, rate) = measure(regions);
            (*g, regions, bytes, rate)
        })
        .filter(|(_, _, bytes, rate)| {
            (max_bytes > 0 && *bytes > max_bytes) || (max_rate > 0 && *rate > max_rate)
        })
        .max_by_key(|(g, _, bytes, rate)| (*bytes, *rate, std::cmp::Reverse(*g)))?;
    let why = if max_bytes > 0 && bytes > max_bytes {
        format!("{bytes} B (> {max_bytes})")
    } else {
        format!("{rate} B/s (> {max_rate})")
    };
    Some(Decision::Propose {
        spec: JobSpec::SplitRg {
            rg,
            new_rg: 0,
            regions: regions.clone(),
        },
        reason: format!(
            "affinity group {group} grew to {why} in RG {rg}, shared with {} other groups; \
             moving its {} regions to an RG of its own",
            groups.len() - 1,
            regions.len()
        ),
        scores: vec![
            ("group_bytes".into(), bytes as f64),
            ("group_bytes_per_sec".into(), rate as f64),
            ("affinity_groups".into(), groups.len() as f64),
        ],
    })
}
