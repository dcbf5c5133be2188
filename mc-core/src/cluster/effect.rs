//! What a job does to the cluster's shape, in one vocabulary every job type declares its
//! effect in (PD calls a step's share of it "influence"). The live view applies the effects
//! of succeeded jobs at once, so whoever plans next sees the cluster as it now is; the
//! schedulers count the effects of running and just-finished jobs as pending work. Neither
//! matches on job types: a new job type declares its effect in its own module and nothing
//! else changes.
//!
//! Members and leaders reach the view from the stores (heartbeats and step outcomes, ordered
//! by Raft term and conf_ver); an effect only says which stores will gain or lose a replica or
//! a leader, for the pending-work accounting. Structural effects — RGs and regions created,
//! split, merged or deleted — are applied to the view when the job succeeds.

use proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, RegionId, RgId, StoreId};

/// A region to create, with its id already allocated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRegion {
    pub id: RegionId,
    pub object: ObjectId,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl NewRegion {
    /// As a store step names it: at version 1.
    pub fn descriptor(&self) -> pb::RegionDescriptor {
        pb::RegionDescriptor {
            region_id: self.id,
            object_id: self.object,
            range: Some(pb::KeyRange {
                start: self.start.clone(),
                end: self.end.clone(),
            }),
            epoch: Some(pb::RegionEpoch {
                version: 1,
                conf_ver: 0,
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing the view or the schedulers count (a role change, an offline replica, a
    /// destroyed non-member replica, a parent whose children carry the effects).
    None,
    ReplicaAdded {
        rg: RgId,
        store: StoreId,
        /// Promoted to voter (else it stays a learner).
        voter: bool,
    },
    ReplicaRemoved {
        rg: RgId,
        store: StoreId,
    },
    ReplicaMoved {
        rg: RgId,
        from: StoreId,
        to: StoreId,
    },
    LeaderMoved {
        rg: RgId,
        to: StoreId,
    },
    RgCreated {
        rg: RgId,
        members: Vec<StoreId>,
        leader: Option<StoreId>,
        /// Seeded with it.
        regions: Vec<NewRegion>,
    },
    RgDeleted {
        rg: RgId,
    },
    /// The RG's replicas stop (or start again) serving.
    RgOffline {
        rg: RgId,
        offline: bool,
    },
    RgSplit {
        rg: RgId,
        new_rg: RgId,
        regions: Vec<RegionId>,
    },
    RgsMerged {
        source: RgId,
        target: RgId,
    },
    RegionCreated {
        rg: RgId,
        region: RegionId,
        object: ObjectId,
        start: Vec<u8>,
        end: Vec<u8>,
    },
    RegionSplit {
        region: RegionId,
        at: Vec<u8>,
        new_region: RegionId,
    },
    RegionsMerged {
        left: RegionId,
        right: RegionId,
    },
    RegionDeleted {
        region: RegionId,
    },
    RegionsCreated {
        rg: RgId,
        regions: Vec<NewRegion>,
    },
}

impl Effect {
    /// The RG whose replicas or leader the effect moves: the pending-work accounting's unit.
    pub fn moves_in(&self) -> Option<RgId> {
        match self {
            Effect::ReplicaAdded { rg, .. }
            | Effect::ReplicaRemoved { rg, .. }
            | Effect::ReplicaMoved { rg, .. }
            | Effect::LeaderMoved { rg, .. } => Some(*rg),
            _ => None,
        }
    }
}
