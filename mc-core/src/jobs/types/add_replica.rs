//! Adds a replica of an RG on a store, as a voter (default) or a learner.
//!
//! Steps: Create(store) → AddLearner(store) → Promote(store) when a voter is wanted.
//! Rollback: Remove(store) → Destroy(store).
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (the learner did not catch up), NotFound.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, store: StoreId, voter: bool) -> Result<Plan> {
    let info = checks::rg_heard(view, rg, "rg_id")?;
    checks::store_usable(view, store, "store_id")?;
    checks::not_member(info, store)?;
    let mut steps = vec![
        PlannedStep::new(AtomicStep::Create(step::Create {
            rg,
            store,
            members: vec![],
            regions: vec![],
            campaign: false,
        }))
        .undo([AtomicStep::destroy(rg, store)]),
        PlannedStep::new(AtomicStep::AddLearner(step::AddLearner { rg, store }))
            .undo([AtomicStep::Remove(step::Remove { rg, store })]),
    ];
    if voter {
        steps.push(PlannedStep::new(AtomicStep::Promote(step::Promote {
            rg,
            store,
        })));
    }
    Ok(Plan::new(steps))
}

/// What the job does to the cluster's shape: One replica more, on `store`.
pub fn effect(rg: RgId, store: StoreId, voter: bool) -> Effect {
    Effect::ReplicaAdded { rg, store, voter }
}
