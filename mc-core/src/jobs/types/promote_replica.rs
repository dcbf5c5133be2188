//! Makes a caught-up learner a voter.
//!
//! Steps: Promote(store). Rollback: Demote(store).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (not a learner of the RG).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    if checks::member(info, store)? != Role::Learner {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg} replica on store {store}"),
            state: "voter".into(),
            required: "learner".into(),
        });
    }
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Promote(step::Promote { rg, store }))
            .undo([AtomicStep::Demote(step::Demote { rg, store })]),
    ]))
}
