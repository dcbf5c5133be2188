//! What the view holds of each store, RG and region: plain records, below the view and its
//! indexes, which both read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, RegionId, RgId, StoreId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    Up,
    Disconnected,
    Down,
    Draining,
    Tombstone,
}

impl StoreState {
    /// New replicas may be placed only on Up stores.
    pub fn accepts_replicas(self) -> bool {
        self == StoreState::Up
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    pub id: StoreId,
    pub address: String,
    pub state: StoreState,
    pub labels: BTreeMap<String, String>,
    /// As the store last reported; 0 when unknown. Balancing weighs replica counts by it.
    #[serde(default)]
    pub capacity_bytes: u64,
}

pub use super::members::Role;

impl super::effect::NewRegion {
    /// The region as the view holds it once created in `rg`, at `version`: empty.
    pub fn info(&self, rg: RgId, version: u64) -> RegionInfo {
        RegionInfo {
            id: self.id,
            rg,
            object: self.object,
            start: self.start.clone().into(),
            end: self.end.clone().into(),
            version,
            size_bytes: 0,
            keys: 0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgInfo {
    pub id: RgId,
    pub members: super::members::Members,
    pub leader: Option<StoreId>,
    pub regions: super::RegionSet,
    pub offline: bool,
    /// Its leader reported (a heartbeat or a step outcome) since this MC took up its term. A
    /// shape restored from the catalog is not: work that changes the RG's membership waits.
    #[serde(default)]
    pub heard: bool,
    /// The leader's Raft term, its membership version and applied index, as last reported
    /// (0 until a leader reports).
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub conf_ver: u64,
    #[serde(default)]
    pub applied_index: u64,
}

impl RgInfo {
    pub fn voters(&self) -> impl Iterator<Item = StoreId> + '_ {
        self.members
            .iter()
            .filter(|(_, r)| **r == Role::Voter)
            .map(|(s, _)| *s)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInfo {
    pub id: RegionId,
    pub rg: RgId,
    pub object: ObjectId,
    pub start: super::Key,
    /// Empty: unbounded.
    pub end: super::Key,
    pub version: u64,
    /// As last reported by the RG's leader.
    #[serde(default)]
    pub size_bytes: u64,
    #[serde(default)]
    pub keys: u64,
}

impl RegionInfo {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }
}

/// Traffic of one region, per second, as its RG's leader last reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionLoad {
    pub read_bytes_per_sec: u64,
    pub write_bytes_per_sec: u64,
}

impl RegionLoad {
    pub fn total(&self) -> u64 {
        self.read_bytes_per_sec + self.write_bytes_per_sec
    }

    pub(super) fn add(&mut self, other: &RegionLoad) {
        self.read_bytes_per_sec += other.read_bytes_per_sec;
        self.write_bytes_per_sec += other.write_bytes_per_sec;
    }
}
