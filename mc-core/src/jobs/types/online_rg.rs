//! Brings a whole RG back online.
//!
//! Steps: Online on each member. Rollback: Offline(whole RG) on each.
//! Retry: Busy, Unavailable. Abort: Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    Ok(Plan::new(
        info.members
            .keys()
            .map(|store| {
                PlannedStep::new(AtomicStep::Online(step::Online { rg, store: *store })).undo([
                    AtomicStep::Offline(step::Offline {
                        rg,
                        store: *store,
                        whole_rg: true,
                    }),
                ])
            })
            .collect(),
    ))
}

/// What the job does to the cluster's shape: The RG serves again.
pub fn effect(rg: RgId) -> Effect {
    Effect::RgOffline { rg, offline: false }
}
