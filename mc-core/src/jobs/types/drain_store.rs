//! Moves every replica off a store: the job's one step waits for child MigrateReplica jobs,
//! which the engine spawns under the store limits; the job's progress is its children's.
//!
//! Steps: WaitChildren. Rollback: cancel stops the children that have not finished; moved
//! replicas stay where they are.
//! Abort: a child that fails leaves the drain Failed, with the child named.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, store: StoreId) -> Result<Plan> {
    checks::store_exists(view, store, "store_id")?;
    let state = view.store(store).expect("checked").state;
    if matches!(state, crate::cluster::StoreState::Tombstone) {
        return Err(McError::FailedPrecondition {
            subject: format!("store/{store}"),
            state: "tombstone".into(),
            required: "up or draining".into(),
        });
    }
    Ok(Plan::new(vec![PlannedStep::new(AtomicStep::WaitChildren)]))
}
