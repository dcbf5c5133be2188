//! Moves one replica of an RG from one store to another.
//!
//! Steps: Create(to) → AddLearner(to) → Promote(to) → Offline(from) → Remove(from) →
//! Destroy(from).
//! Rollback: before Remove(from) succeeds, undo what was done — Online(from), Remove(to),
//! Destroy(to); once Remove(from) has succeeded, only roll forward.
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed (for example the target cannot catch up
//! in time), EpochMismatch, NotFound of a region.

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(view: &ClusterView, rg: RgId, from: StoreId, to: StoreId) -> Result<Plan> {
    checks::distinct(from, to, "to_store_id")?;
    let info = checks::rg_heard(view, rg, "rg_id")?;
    checks::store_exists(view, from, "from_store_id")?;
    checks::store_usable(view, to, "to_store_id")?;
    checks::member(info, from)?;
    checks::not_member(info, to)?;
    Ok(Plan::new(vec![
        PlannedStep::new(AtomicStep::Create(step::Create {
            rg,
            store: to,
            members: vec![],
            regions: vec![],
            campaign: false,
        }))
        .undo([AtomicStep::destroy(rg, to)]),
        PlannedStep::new(AtomicStep::AddLearner(step::AddLearner { rg, store: to }))
            .undo([AtomicStep::Remove(step::Remove { rg, store: to })]),
        PlannedStep::new(AtomicStep::Promote(step::Promote { rg, store: to })),
        PlannedStep::new(AtomicStep::Offline(step::Offline {
            rg,
            store: from,
            whole_rg: false,
        }))
        .undo([AtomicStep::Online(step::Online { rg, store: from })]),
        PlannedStep::new(AtomicStep::Remove(step::Remove { rg, store: from })).no_return(),
        PlannedStep::new(AtomicStep::destroy(rg, from)),
    ]))
}

/// What the job does to the cluster's shape: The replica leaves `from` for `to`.
pub fn effect(rg: RgId, from: StoreId, to: StoreId) -> Effect {
    Effect::ReplicaMoved { rg, from, to }
}
