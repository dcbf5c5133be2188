//! Splits an RG with SplitRg, moving whole affinity groups (never part of one) to the new RG:
//! one that holds more regions than `split-checker.max-rg-regions`, about half its regions;
//! and one shared by several groups (the DDL path packs small tables together) where one
//! group grew past `max-group-bytes` or `max-group-bytes-per-sec`: that group, alone. An RG
//! that is one affinity group is left whole and reported. The new RG's id is allocated when
//! the proposal becomes a job (`new_rg` 0 here).
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
            if ctx.busy.contains(&rg.id) || rg.regions.len() < 2 || !ctx.healthy(rg.id) {
                continue;
            }
            let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for r in rg.regions.iter().filter_map(|r| view.region(*r)) {
                groups.entry(ctx.group_of(r.object)).or_default().push(r.id);
            }
            if rg.regions.len() <= max {
                if let Some(d) = grown_group(ctx, rg.id, &groups) {
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
