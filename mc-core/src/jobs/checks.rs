//! Preconditions shared by job types. Each failure names the field or the state at fault.

use crate::cluster::{ClusterView, RgInfo, Role};
use crate::error::{McError, Result};
use crate::ids::{RgId, StoreId};

pub fn rg<'a>(view: &'a ClusterView, id: RgId, field: &str) -> Result<&'a RgInfo> {
    if id == 0 {
        return Err(McError::invalid(field, "must be set"));
    }
    view.rg(id).ok_or_else(|| McError::not_found("rg", id))
}

/// The RG, which must have reported in this MC's term: its membership is known as its leader
/// says, not as the catalog last recorded it. Until then, Unavailable (it passes within an
/// RG heartbeat interval).
pub fn rg_heard<'a>(view: &'a ClusterView, id: RgId, field: &str) -> Result<&'a RgInfo> {
    let info = rg(view, id, field)?;
    if !info.heard {
        return Err(McError::Unavailable {
            reason: format!(
                "RG {id} has not reported to this MC leader yet (its shape is the catalog's \
                 until its leader's first heartbeat); membership changes wait for it"
            ),
            retry_after_ms: 1_000,
        });
    }
    Ok(info)
}

pub fn store_exists(view: &ClusterView, id: StoreId, field: &str) -> Result<()> {
    if id == 0 {
        return Err(McError::invalid(field, "must be set"));
    }
    view.store(id)
        .map(|_| ())
        .ok_or_else(|| McError::not_found("store", id))
}

/// The store exists and may receive a new replica.
pub fn store_usable(view: &ClusterView, id: StoreId, field: &str) -> Result<()> {
    store_exists(view, id, field)?;
    let state = view.store(id).expect("checked").state;
    if !state.accepts_replicas() {
        return Err(McError::StoreNotUsable {
            store: id,
            state: format!("{state:?}").to_lowercase(),
        });
    }
    Ok(())
}

pub fn member(rg: &RgInfo, store: StoreId) -> Result<Role> {
    rg.members
        .get(&store)
        .copied()
        .ok_or_else(|| McError::FailedPrecondition {
            subject: format!("rg/{}", rg.id),
            state: format!("without a replica on store {store}"),
            required: format!("a replica on store {store}"),
        })
}

pub fn not_member(rg: &RgInfo, store: StoreId) -> Result<()> {
    if rg.members.contains_key(&store) {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{}", rg.id),
            state: format!("already with a replica on store {store}"),
            required: format!("no replica on store {store}"),
        });
    }
    Ok(())
}

/// Removing (or demoting) voter `store` must leave a majority of today's voters.
pub fn keeps_quorum(rg: &RgInfo, store: StoreId) -> Result<()> {
    let voters = rg.voters().count();
    if rg.members.get(&store) == Some(&Role::Voter) && voters - 1 < voters / 2 + 1 {
        return Err(McError::BelowQuorum { rg: rg.id, voters });
    }
    Ok(())
}

pub fn distinct(a: StoreId, b: StoreId, field: &str) -> Result<()> {
    if a == b {
        return Err(McError::invalid(
            field,
            format!("source and target are both store {a}"),
        ));
    }
    Ok(())
}

/// What a retried job's remaining steps need from the cluster now: every store a step is sent
/// to is known and reachable (not Down or Tombstone), and every RG a step acts on exists
/// (Create and Destroy excepted: one makes the RG, the other is done when it is gone).
pub fn resumable(view: &ClusterView, steps: &[crate::jobs::PlannedStep]) -> Result<()> {
    for s in steps {
        resumable_step(view, &s.step)?;
    }
    Ok(())
}

pub fn resumable_steps(view: &ClusterView, steps: &[crate::jobs::AtomicStep]) -> Result<()> {
    for s in steps {
        resumable_step(view, s)?;
    }
    Ok(())
}

fn resumable_step(view: &ClusterView, step: &crate::jobs::AtomicStep) -> Result<()> {
    use crate::cluster::StoreState;
    use crate::jobs::Target;
    if let Target::Store(store) = step.target() {
        let info = view
            .store(store)
            .ok_or_else(|| McError::not_found("store", store))?;
        if matches!(info.state, StoreState::Down | StoreState::Tombstone) {
            return Err(McError::StoreNotUsable {
                store,
                state: format!("{:?}", info.state).to_lowercase(),
            });
        }
    }
    for (id, field) in step.spec().map(|s| s.needs_rgs()).unwrap_or_default() {
        rg(view, id, field)?;
    }
    Ok(())
}
