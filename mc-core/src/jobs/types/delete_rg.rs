//! Deletes an empty RG: offline everywhere, then destroy every replica.
//!
//! Steps: Offline(whole RG) on each member → Destroy on each member.
//! Rollback: Online on each member until the first Destroy succeeds; roll forward after.
//! Retry: Busy, Unavailable. Abort: Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    if !info.regions.is_empty() {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg}"),
            state: format!("holding {} regions", info.regions.len()),
            required: "no regions (delete or move them first)".into(),
        });
    }
    let mut steps: Vec<PlannedStep> = info
        .members
        .keys()
        .map(|store| {
            PlannedStep::new(AtomicStep::Offline(step::Offline {
                rg,
                store: *store,
                whole_rg: true,
            }))
            .undo([AtomicStep::Online(step::Online { rg, store: *store })])
        })
        .collect();
    // The leader's replica (the most caught up) first, checking it holds no region — the view
    // may not know a region placed in the RG since — before anything is destroyed; the others
    // after it unchecked (a lagging one could never catch up with an RG already half gone).
    let mut order: Vec<StoreId> = info.members.keys().copied().collect();
    if let Some(leader) = info.leader.filter(|l| order.contains(l)) {
        order.retain(|s| *s != leader);
        order.insert(0, leader);
    }
    for (i, store) in order.into_iter().enumerate() {
        let step = if i == 0 {
            PlannedStep::new(AtomicStep::destroy_empty(rg, store)).no_return()
        } else {
            PlannedStep::new(AtomicStep::destroy(rg, store))
        };
        steps.push(step);
    }
    Ok(Plan::new(steps))
}

/// What the job does to the cluster's shape: The RG is gone.
pub fn effect(rg: RgId) -> Effect {
    Effect::RgDeleted { rg }
}
