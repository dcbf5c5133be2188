//! Creates a new RG on the given stores, with no regions (CreateRegion jobs add them).
//!
//! Steps: Create(bootstrap) on each member store → TransferLeader(preferred) when one is named.
//! Rollback: Offline (whole RG) and Destroy on each store where Create may have run.
//! Retry: Busy, Unavailable. Abort: Failed (the RG id already exists on a store).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(
    view: &ClusterView,
    rg: RgId,
    stores: &[StoreId],
    leader: Option<StoreId>,
) -> Result<Plan> {
    if rg == 0 {
        return Err(McError::invalid("rg_id", "must be allocated"));
    }
    if view.rg(rg).is_some() {
        return Err(McError::FailedPrecondition {
            subject: format!("rg/{rg}"),
            state: "existing".into(),
            required: "a new RG id".into(),
        });
    }
    if stores.is_empty() {
        return Err(McError::invalid(
            "store_ids",
            "an RG needs at least one store",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for store in stores {
        checks::store_usable(view, *store, "store_ids")?;
        if !seen.insert(*store) {
            return Err(McError::invalid(
                "store_ids",
                format!("store {store} is listed twice"),
            ));
        }
    }
    if let Some(l) = leader
        && !seen.contains(&l)
    {
        return Err(McError::invalid(
            "leader_store_id",
            format!("store {l} is not one of the RG's stores"),
        ));
    }
    let mut steps: Vec<PlannedStep> = stores
        .iter()
        .map(|store| {
            PlannedStep::new(AtomicStep::Create {
                rg,
                store: *store,
                members: stores.to_vec(),
                regions: vec![],
            })
            .undo([
                AtomicStep::Offline {
                    rg,
                    store: *store,
                    whole_rg: true,
                },
                AtomicStep::destroy(rg, *store),
            ])
        })
        .collect();
    if let Some(to) = leader {
        steps.push(PlannedStep::new(AtomicStep::TransferLeader { rg, to }));
    }
    Ok(Plan::new(steps))
}

/// What the job does to the cluster's shape: A new RG on `stores`.
pub fn effect(rg: RgId, stores: &[StoreId], leader: Option<StoreId>) -> Effect {
    Effect::RgCreated {
        rg,
        members: stores.to_vec(),
        // A one-member RG is led by its member; otherwise the leader is known once a store
        // reports it (a preferred one is only where the job moved it).
        leader: match stores {
            [only] => Some(*only),
            _ => leader,
        },
    }
}
