//! Merges two adjacent regions of one object in one RG; the left one survives. Metadata only.
//!
//! Steps: MergeRegion. Rollback: none needed (a refused merge changes nothing).
//! Retry: Busy, NotLeader, Unavailable. Abort: EpochMismatch, Failed (not adjacent).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, left: RegionId, right: RegionId) -> Result<Plan> {
    let l = view
        .region(left)
        .ok_or_else(|| McError::not_found("region", left))?;
    let r = view
        .region(right)
        .ok_or_else(|| McError::not_found("region", right))?;
    if l.rg != r.rg {
        return Err(McError::FailedPrecondition {
            subject: format!("regions {left} and {right}"),
            state: format!("in RGs {} and {}", l.rg, r.rg),
            required: "one RG (merge the RGs first)".into(),
        });
    }
    if l.end.is_empty() || l.end != r.start || l.object != r.object {
        return Err(McError::invalid(
            "right_region_id",
            format!("region {right} must start where {left} ends, in the same object"),
        ));
    }
    Ok(Plan::new(vec![PlannedStep::new(AtomicStep::MergeRegion(
        step::MergeRegion {
            rg: l.rg,
            left,
            right,
            left_version: l.version,
            right_version: r.version,
        },
    ))]))
}

/// What the job does to the cluster's shape: `left` covers both; `right` is gone.
pub fn effect(left: RegionId, right: RegionId) -> Effect {
    Effect::RegionsMerged { left, right }
}
