//! Moves some regions of an RG into a new RG on the same stores, with no data copy: the split
//! is a command in the parent's log from which every member store creates the new RG.
//!
//! Steps: SplitRg. Rollback: none (point of no return; a wrong split is undone by MergeRg).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (learners present, unknown regions).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, new_rg: RgId, regions: &[RegionId]) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    if new_rg == 0 || view.rg(new_rg).is_some() {
        return Err(McError::invalid(
            "new_rg_id",
            "must be a new, allocated RG id",
        ));
    }
    if regions.is_empty() {
        return Err(McError::invalid(
            "region_ids",
            "name at least one region to move",
        ));
    }
    for region in regions {
        if !info.regions.contains(region) {
            return Err(McError::invalid(
                "region_ids",
                format!("region {region} is not in RG {rg}"),
            ));
        }
    }
    if regions.len() >= info.regions.len() {
        return Err(McError::invalid(
            "region_ids",
            "at least one region must stay in the parent RG",
        ));
    }
    if info.members.values().any(|r| *r == Role::Learner) {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg}"),
            state: "with learners".into(),
            required: "voters only".into(),
        });
    }
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::SplitRg(step::SplitRg {
            rg,
            new_rg,
            regions: regions.to_vec(),
        }))
        .no_return(),
    ]))
}

/// What the job does to the cluster's shape: `regions` move to the new RG, on the same stores.
pub fn effect(rg: RgId, new_rg: RgId, regions: &[RegionId]) -> Effect {
    Effect::RgSplit {
        rg,
        new_rg,
        regions: regions.to_vec(),
    }
}
