//! Adds a region to an RG (metadata only; the key range must not overlap any region).
//!
//! Steps: CreateRegion. Rollback: DeleteRegion (without data; a region not found there counts
//! as deleted: the create never landed).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (overlap), EpochMismatch.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, region: NewRegion) -> Result<Plan> {
    checks::rg(view, rg, "rg_id")?;
    if region.id == 0 || view.region(region.id).is_some() {
        return Err(McError::invalid(
            "region_id",
            "must be a new, allocated region id",
        ));
    }
    if !region.end.is_empty() && region.end <= region.start {
        return Err(McError::invalid("range", "end must be after start"));
    }
    let probe = region.info(rg, 1);
    if let Some(other) = view.regions.values().find(|r| overlaps(r, &probe)) {
        return Err(McError::FailedPrecondition {
            subject: format!("range of new region {}", region.id),
            state: format!("overlapping region {} (RG {})", other.id, other.rg),
            required: "a free key range".into(),
        });
    }
    let id = region.id;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::CreateRegion(step::CreateRegion { rg, region })).undo([
            AtomicStep::DeleteRegion(step::DeleteRegion {
                rg,
                region: id,
                version: 1,
            }),
        ]),
    ]))
}

fn overlaps(a: &RegionInfo, b: &RegionInfo) -> bool {
    let a_before_b = !a.end.is_empty() && a.end <= b.start;
    let b_before_a = !b.end.is_empty() && b.end <= a.start;
    !(a_before_b || b_before_a)
}

/// What the job does to the cluster's shape: A new region in `rg`.
pub fn effect(rg: RgId, region: &NewRegion) -> Effect {
    Effect::RegionCreated {
        rg,
        region: region.id,
        object: region.object,
        start: region.start.clone(),
        end: region.end.clone(),
    }
}
