//! Merges a source RG into a target RG on the same stores: the source goes offline, the
//! target takes over its regions by a command in its own log (every member waits for its local
//! source replica to have applied everything), and the source replicas are destroyed.
//!
//! Steps: Offline(source, whole RG) on each member → MergeRg → Destroy(source) on each member,
//! each once that member's target replica holds the merged regions.
//! Rollback: Online(source) on each member before MergeRg succeeds; roll forward after.
//! Members must already be aligned (same stores); a job that first moves replicas into line is
//! not part of version 1.
//! Retry: Busy, NotLeader, Unavailable. Abort: Failed, NotFound.

use super::prelude::*;

pub const VERSION: u32 = 2;

pub fn plan(view: &ClusterView, source: RgId, target: RgId) -> Result<Plan> {
    if source == target {
        return Err(McError::invalid(
            "target_rg_id",
            "source and target are the same RG",
        ));
    }
    let s = checks::rg_heard(view, source, "source_rg_id")?;
    let t = checks::rg_heard(view, target, "target_rg_id")?;
    let (sm, tm): (Vec<_>, Vec<_>) = (s.members.keys().collect(), t.members.keys().collect());
    if sm != tm {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{source}"),
            state: format!("on stores {sm:?}"),
            required: format!("the target's stores {tm:?}"),
        });
    }
    let members: Vec<StoreId> = s.members.keys().copied().collect();
    let mut steps: Vec<PlannedStep> = members
        .iter()
        .map(|store| {
            PlannedStep::new(AtomicStep::Offline(step::Offline {
                rg: source,
                store: *store,
                whole_rg: true,
            }))
            .undo([AtomicStep::Online(step::Online {
                rg: source,
                store: *store,
            })])
        })
        .collect();
    steps.push(PlannedStep::new(AtomicStep::MergeRg(step::MergeRg { source, target })).no_return());
    // Each store destroys its source replica only once its target replica holds the merged
    // regions (it may apply the merge later than the leader, or get it by snapshot).
    steps.extend(members.iter().map(|store| {
        PlannedStep::new(AtomicStep::Destroy(step::Destroy {
            rg: source,
            store: *store,
            merged_into: Some(target),
            only_if_empty: false,
        }))
    }));
    Ok(Plan::new(steps))
}

/// What the job does to the cluster's shape: The source's regions move into the target; the source is gone.
pub fn effect(source: RgId, target: RgId) -> Effect {
    Effect::RgsMerged { source, target }
}
