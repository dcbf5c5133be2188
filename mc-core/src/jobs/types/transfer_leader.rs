//! Hands the leadership of an RG to the replica on a given store.
//!
//! Steps: TransferLeader(to). Rollback: none — wherever leadership ends is a valid state.
//! Retry: Busy, NotLeader, Unavailable (including the transfer not finishing in time).
//! Abort: Failed (the target is not a voter).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, to: StoreId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    checks::store_usable(view, to, "to_store_id")?;
    if checks::member(info, to)? != Role::Voter {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg} replica on store {to}"),
            state: "learner".into(),
            required: "voter".into(),
        });
    }
    Ok(Plan::new(vec![PlannedStep::new(
        AtomicStep::TransferLeader(step::TransferLeader { rg, to }),
    )]))
}

/// What the job does to the cluster's shape: The leader moves to `to`.
pub fn effect(rg: RgId, to: StoreId) -> Effect {
    Effect::LeaderMoved { rg, to }
}
