//! Removes a replica of an RG: takes it offline (moving leadership away), removes it from the
//! membership and destroys its data.
//!
//! Steps: Offline(store) → Remove(store) → Destroy(store).
//! Rollback: Online(store) before Remove succeeds; roll forward after.
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (no other voter can lead), NotFound.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    checks::member(info, store)?;
    checks::keeps_quorum(info, store)?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Offline {
            rg,
            store,
            whole_rg: false,
        })
        .undo([AtomicStep::Online { rg, store }]),
        PlannedStep::new(AtomicStep::Remove { rg, store }).no_return(),
        PlannedStep::new(AtomicStep::Destroy { rg, store }),
    ]))
}
