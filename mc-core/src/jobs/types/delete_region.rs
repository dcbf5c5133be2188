//! Deletes a region and its data.
//!
//! Steps: DeleteRegion (with data). Rollback: none (point of no return).
//! Retry: Busy, NotLeader, Unavailable. Abort: EpochMismatch, Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, region: RegionId) -> Result<Plan> {
    let info = view
        .region(region)
        .ok_or_else(|| McError::not_found("region", region))?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::DeleteRegion(step::DeleteRegion {
            rg: info.rg,
            region,
            version: info.version,
        }))
        .no_return(),
    ]))
}

/// What the job does to the cluster's shape: The region is gone.
pub fn effect(region: RegionId) -> Effect {
    Effect::RegionDeleted { region }
}
