//! Splits a region at a key; the right half gets a new region id. Metadata only.
//!
//! Steps: SplitRegion. Rollback: MergeRegion of the two halves.
//! Retry: Busy, NotLeader, Unavailable. Abort: EpochMismatch (the region changed), Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(
    view: &ClusterView,
    region: RegionId,
    at: Vec<u8>,
    new_region: RegionId,
) -> Result<Plan> {
    let info = view
        .region(region)
        .ok_or_else(|| McError::not_found("region", region))?;
    if at.is_empty() || at.as_slice() <= info.start.as_slice() || !info.contains(&at) {
        return Err(McError::invalid(
            "split_key",
            format!("must lie strictly inside region {region}"),
        ));
    }
    if new_region == 0 || view.region(new_region).is_some() {
        return Err(McError::invalid(
            "new_region_id",
            "must be a new, allocated region id",
        ));
    }
    let (rg, version) = (info.rg, info.version);
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::SplitRegion(step::SplitRegion {
            rg,
            region,
            at,
            new_region,
            version,
        }))
        .undo([AtomicStep::MergeRegion(step::MergeRegion {
            rg,
            left: region,
            right: new_region,
            left_version: version + 1,
            right_version: version + 1,
        })]),
    ]))
}

/// What the job does to the cluster's shape: The region ends at `at`; `new_region` covers the rest.
pub fn effect(region: RegionId, at: &[u8], new_region: RegionId) -> Effect {
    Effect::RegionSplit {
        region,
        at: at.to_vec(),
        new_region,
    }
}
