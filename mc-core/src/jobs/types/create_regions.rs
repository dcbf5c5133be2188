//! Adds a DDL call's regions to an RG that exists, in one step: one Raft command on the RG's
//! leader creates them all or none (metadata only; no range may overlap a region).
//!
//! Steps: CreateRegion(regions). Rollback: DeleteRegion of each (without data; a region the
//! command did not create is not found, which the undo counts as done).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (overlap), EpochMismatch.

use std::collections::BTreeSet;

use super::prelude::*;

pub const VERSION: u32 = 1;

/// Regions one job creates: what one store step carries.
pub const MAX_REGIONS: usize = 4_096;

pub fn plan(view: &ClusterView, rg: RgId, regions: &[NewRegion]) -> Result<Plan> {
    let sorted = check(view, rg, regions)?;
    // One pass over the view's regions, each looked up among the new ones sorted by start:
    // O(n log k), not O(n * k), for a pre-split table.
    for other in view.regions.values() {
        // The new region starting last before `other` ends, and so the only one that can
        // overlap it if any does (the new ones are disjoint).
        let at = sorted.partition_point(|r| other.end.is_empty() || r.start < other.end);
        if let Some(r) = at.checked_sub(1).map(|i| sorted[i])
            && (r.end.is_empty() || r.end > other.start)
        {
            return Err(overlap(r, other.id, other.rg));
        }
    }
    Ok(steps(rg, regions))
}

/// `plan` with the overlap check made against the route index: O(k log n) for k new regions
/// in a view of n, where `plan` passes over every region (the DDL path uses this one).
pub fn plan_indexed(
    view: &ClusterView,
    index: &crate::cluster::routes::RouteIndex,
    rg: RgId,
    regions: &[NewRegion],
) -> Result<Plan> {
    check(view, rg, regions)?;
    for r in regions {
        if let Some(other) = index.overlapping(view, &r.start, &r.end) {
            return Err(overlap(r, other.id, other.rg));
        }
    }
    Ok(steps(rg, regions))
}

/// Everything but overlaps with existing regions; the new regions sorted by start.
fn check<'r>(view: &ClusterView, rg: RgId, regions: &'r [NewRegion]) -> Result<Vec<&'r NewRegion>> {
    checks::rg(view, rg, "rg_id")?;
    if regions.is_empty() || regions.len() > MAX_REGIONS {
        return Err(McError::invalid(
            "regions",
            format!("{} regions; 1 to {MAX_REGIONS} per job", regions.len()),
        ));
    }
    let mut ids = BTreeSet::new();
    for r in regions {
        if r.id == 0 || view.region(r.id).is_some() || !ids.insert(r.id) {
            return Err(McError::invalid(
                "regions.region_id",
                format!("region {} must be a new, allocated region id, once", r.id),
            ));
        }
        if !r.end.is_empty() && r.end <= r.start {
            return Err(McError::invalid(
                "regions.range",
                format!("region {}: end must be after start", r.id),
            ));
        }
    }
    let mut sorted: Vec<&NewRegion> = regions.iter().collect();
    sorted.sort_by(|a, b| a.start.cmp(&b.start));
    for w in sorted.windows(2) {
        if w[0].end.is_empty() || w[0].end > w[1].start {
            return Err(McError::invalid(
                "regions.range",
                format!("regions {} and {} overlap", w[0].id, w[1].id),
            ));
        }
    }
    Ok(sorted)
}

fn overlap(r: &NewRegion, other: RegionId, other_rg: RgId) -> McError {
    McError::FailedPrecondition {
        subject: format!("range of new region {}", r.id),
        state: format!("overlapping region {other} (RG {other_rg})"),
        required: "a free key range".into(),
    }
}

fn steps(rg: RgId, regions: &[NewRegion]) -> Plan {
    Plan::new(vec![
        PlannedStep::new(AtomicStep::CreateRegions(step::CreateRegions {
            rg,
            regions: regions.to_vec(),
        }))
        .undo(regions.iter().map(|r| {
            AtomicStep::DeleteRegion(step::DeleteRegion {
                rg,
                region: r.id,
                version: 1,
            })
        })),
    ])
}

/// What the job does to the cluster's shape: new regions in `rg`.
pub fn effect(rg: RgId, regions: &[NewRegion]) -> Effect {
    Effect::RegionsCreated {
        rg,
        regions: regions.to_vec(),
    }
}
