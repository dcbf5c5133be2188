//! Stops a replica from serving: leadership moves away first if it leads.
//!
//! Steps: Offline(store). Rollback: Online(store).
//! Retry: Busy, Unavailable. Abort: Failed (no other voter to lead).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    checks::member(info, store)?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Offline(step::Offline {
            rg,
            store,
            whole_rg: false,
        }))
        .undo([AtomicStep::Online(step::Online { rg, store })]),
    ]))
}
