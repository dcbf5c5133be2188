//! Takes a whole RG offline: every replica stops serving; leadership stays where it is.
//!
//! Steps: Offline(whole RG) on each member. Rollback: Online on each.
//! Retry: Busy, Unavailable. Abort: Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    Ok(Plan::new(
        info.members
            .keys()
            .map(|store| {
                PlannedStep::new(AtomicStep::Offline(step::Offline {
                    rg,
                    store: *store,
                    whole_rg: true,
                }))
                .undo([AtomicStep::Online(step::Online { rg, store: *store })])
            })
            .collect(),
    ))
}

/// What the job does to the cluster's shape: The RG stops serving.
pub fn effect(rg: RgId) -> Effect {
    Effect::RgOffline { rg, offline: true }
}
