//! Makes a voter a learner.
//!
//! Steps: Demote(store). Rollback: Promote(store).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (the leader itself, or not a voter).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    if checks::member(info, store)? != Role::Voter {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg} replica on store {store}"),
            state: "learner".into(),
            required: "voter".into(),
        });
    }
    checks::keeps_quorum(info, store)?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Demote(step::Demote { rg, store }))
            .undo([AtomicStep::Promote(step::Promote { rg, store })]),
    ]))
}
