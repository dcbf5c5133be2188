//! Deletes what a store still holds of an RG it is no longer a member of (an orphan left by a
//! crash or an interrupted job).
//!
//! Steps: Offline(store) → Destroy(store). The replica's own (stale) membership may still
//! list it, and a store destroys only an offline replica of a multi-member RG, so it is taken
//! offline first: it stops campaigning, which it should not do anyway. It is taken offline as
//! its own whole RG (`whole_rg`: stop serving, keep any leadership): a removed replica that
//! led when its store died believes it still leads after a restart, and asking it to hand
//! leadership to the RG it no longer belongs to waits out the step's deadline every time.
//! Rollback: Online(store) if the Destroy fails; none after it (point of no return).
//! Retry: Busy, Unavailable. Abort: Failed.

use super::prelude::*;

pub const VERSION: u32 = 3;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    if rg == 0 {
        return Err(McError::invalid("rg_id", "must be set"));
    }
    checks::store_exists(view, store, "store_id")?;
    // An RG the catalog knows must have reported in this term: its membership, not the
    // catalog's last record of it, says whether the replica is a member. (An RG no view or
    // catalog knows is gone, and what a store holds of it is an orphan.)
    if view.rg(rg).is_some() {
        checks::rg_heard(view, rg, "rg_id")?;
    }
    if let Some(info) = view.rg(rg)
        && info.members.contains_key(&store)
    {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg} replica on store {store}"),
            state: "a member".into(),
            required: "removed from the RG first (RemoveReplica)".into(),
        });
    }
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Offline(step::Offline {
            rg,
            store,
            whole_rg: true,
        }))
        .undo([AtomicStep::Online(step::Online { rg, store })]),
        PlannedStep::new(AtomicStep::destroy(rg, store)).no_return(),
    ]))
}
