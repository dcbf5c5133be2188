//! Lets an offline replica serve (and campaign) again.
//!
//! Steps: Online(store). Rollback: Offline(store).
//! Retry: Busy, Unavailable. Abort: Failed.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    checks::member(info, store)?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Online(step::Online { rg, store })).undo([
            AtomicStep::Offline(step::Offline {
                rg,
                store,
                whole_rg: false,
            }),
        ]),
    ]))
}
