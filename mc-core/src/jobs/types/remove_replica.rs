//! Removes a replica of an RG: takes it offline (moving leadership away), removes it from the
//! membership and destroys its data.
//!
//! Steps: Offline(store) → Remove(store) → Destroy(store).
//! Rollback: Online(store) before Remove succeeds; roll forward after.
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (no other voter can lead), NotFound.
//!
//! A replica on a Down or Tombstone store is only removed from the membership (Remove, sent
//! to the leader): nothing can be sent to the dead store, and it is not the leader. Should
//! the store come back, its replica is no longer a member and stays out of the RG.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    checks::store_exists(view, store, "store_id")?;
    checks::member(info, store)?;
    checks::keeps_quorum(info, store)?;
    let dead = view
        .store(store)
        .is_some_and(|s| matches!(s.state, StoreState::Down | StoreState::Tombstone));
    if dead {
        return Ok(Plan::new(vec![
            PlannedStep::new(AtomicStep::Remove(step::Remove { rg, store })).no_return(),
        ]));
    }
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Offline(step::Offline {
            rg,
            store,
            whole_rg: false,
        }))
        .undo([AtomicStep::Online(step::Online { rg, store })]),
        PlannedStep::new(AtomicStep::Remove(step::Remove { rg, store })).no_return(),
        PlannedStep::new(AtomicStep::destroy(rg, store)),
    ]))
}

/// What the job does to the cluster's shape: One replica less, on `store`.
pub fn effect(rg: RgId, store: StoreId) -> Effect {
    Effect::ReplicaRemoved { rg, store }
}
