//! Creates a new RG on the given stores, seeded with its regions (a DDL call's; none from the
//! API), led at once by a designated leader: no election timeout on the DDL path.
//!
//! Steps: Create(bootstrap) on each other member, then Create(bootstrap, campaign) on the
//! leader — the named one, else the first store — which starts an election as soon as its
//! replica exists; the step's outcome names the leader, so the view knows it when the job ends.
//! Rollback: Offline (whole RG) and Destroy on each store where Create may have run.
//! Retry: Busy, Unavailable. Abort: Failed (the RG id already exists on a store).

use super::prelude::*;

pub const VERSION: u32 = 1;

pub fn plan(
    view: &ClusterView,
    rg: RgId,
    stores: &[StoreId],
    leader: Option<StoreId>,
    regions: &[NewRegion],
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
    if regions.len() > super::create_regions::MAX_REGIONS {
        return Err(McError::invalid(
            "regions",
            format!(
                "{} regions; at most {} per RG created",
                regions.len(),
                super::create_regions::MAX_REGIONS
            ),
        ));
    }
    let leader = leader.unwrap_or(stores[0]);
    // The leader's Create goes last: its election needs the other members' replicas.
    let mut order: Vec<StoreId> = stores.iter().copied().filter(|s| *s != leader).collect();
    order.push(leader);
    let steps: Vec<PlannedStep> = order
        .iter()
        .map(|store| {
            PlannedStep::new(AtomicStep::Create(step::Create {
                rg,
                store: *store,
                members: stores.to_vec(),
                regions: regions.to_vec(),
                campaign: *store == leader && stores.len() > 1,
            }))
            .undo([
                AtomicStep::Offline(step::Offline {
                    rg,
                    store: *store,
                    whole_rg: true,
                }),
                AtomicStep::destroy(rg, *store),
            ])
        })
        .collect();
    Ok(Plan::new(steps))
}

/// What the job does to the cluster's shape: a new RG on `stores` holding `regions`. Its
/// leader is what the campaigning store's outcome said (the view takes it from there); a
/// one-member RG is led by its member.
pub fn effect(
    rg: RgId,
    stores: &[StoreId],
    _leader: Option<StoreId>,
    regions: &[NewRegion],
) -> Effect {
    Effect::RgCreated {
        rg,
        members: stores.to_vec(),
        leader: match stores {
            [only] => Some(*only),
            _ => None,
        },
        regions: regions.to_vec(),
    }
}
