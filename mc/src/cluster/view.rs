//! What the MC knows of the cluster right now: stores, RGs and regions, as built from
//! heartbeats and the catalog. Job validation and planning read it; they never do I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, RegionId, RgId, StoreId};
use crate::jobs::effect::Effect;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Voter,
    Learner,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgInfo {
    pub id: RgId,
    pub members: BTreeMap<StoreId, Role>,
    pub leader: Option<StoreId>,
    pub regions: BTreeSet<RegionId>,
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
    pub start: Vec<u8>,
    /// Empty: unbounded.
    pub end: Vec<u8>,
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

    fn add(&mut self, other: &RegionLoad) {
        self.read_bytes_per_sec += other.read_bytes_per_sec;
        self.write_bytes_per_sec += other.write_bytes_per_sec;
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub stores: BTreeMap<StoreId, StoreInfo>,
    pub rgs: BTreeMap<RgId, RgInfo>,
    pub regions: BTreeMap<RegionId, RegionInfo>,
    /// Only regions with traffic: most are idle, and a million idle regions should cost no
    /// memory here.
    #[serde(default)]
    pub loads: BTreeMap<RegionId, RegionLoad>,
    /// Replicas stores report of RGs that do not list them as members, with when each was
    /// first reported so: left behind by a store that was away while it was removed.
    #[serde(skip)]
    pub strays: BTreeMap<(StoreId, RgId), u64>,
    /// RGs deleted or merged away (tombstones in the catalog): a replica a store still holds
    /// of one is a stray. An RG the view does not know and that is not here is left alone: a
    /// SplitRg or CreateRg that ended in doubt may have made it, with data only it holds.
    #[serde(skip)]
    pub retired: BTreeSet<RgId>,
}

impl ClusterView {
    /// Regions a job created (version 1, empty), into an RG the view knows.
    fn add_new_regions(&mut self, rg: RgId, regions: &[crate::jobs::plan::NewRegion]) {
        let Some(info) = self.rgs.get_mut(&rg) else {
            return;
        };
        for r in regions {
            info.regions.insert(r.id);
            self.regions.entry(r.id).or_insert_with(|| RegionInfo {
                id: r.id,
                rg,
                object: r.object,
                start: r.start.clone(),
                end: r.end.clone(),
                version: 1,
                ..Default::default()
            });
        }
    }

    pub fn store(&self, id: StoreId) -> Option<&StoreInfo> {
        self.stores.get(&id)
    }

    pub fn rg(&self, id: RgId) -> Option<&RgInfo> {
        self.rgs.get(&id)
    }

    pub fn region(&self, id: RegionId) -> Option<&RegionInfo> {
        self.regions.get(&id)
    }

    /// Bytes of user data the RG holds, as last reported.
    pub fn rg_bytes(&self, rg: RgId) -> u64 {
        self.rg(rg)
            .map(|r| {
                r.regions
                    .iter()
                    .filter_map(|id| self.region(*id))
                    .map(|r| r.size_bytes)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Traffic summed up the object tree: each region's load counts for its object and for
    /// every ancestor (index → table → database), so hot tables and hot indexes show.
    pub fn object_loads(&self) -> BTreeMap<ObjectId, RegionLoad> {
        let mut out: BTreeMap<ObjectId, RegionLoad> = BTreeMap::new();
        for (id, load) in &self.loads {
            let Some(region) = self.region(*id) else {
                continue;
            };
            let object = topology::ObjectId(region.object);
            out.entry(region.object).or_default().add(load);
            if object.is_valid() {
                for a in object.ancestors() {
                    out.entry(a.0).or_default().add(load);
                }
            }
        }
        out
    }

    /// Traffic per store, counted where it is served: at each RG's leader.
    pub fn store_loads(&self) -> BTreeMap<StoreId, RegionLoad> {
        let mut out: BTreeMap<StoreId, RegionLoad> = BTreeMap::new();
        for (id, load) in &self.loads {
            if let Some(leader) = self
                .region(*id)
                .and_then(|r| self.rg(r.rg))
                .and_then(|rg| rg.leader)
            {
                out.entry(leader).or_default().add(load);
            }
        }
        out
    }

    /// An RG's traffic.
    pub fn rg_load(&self, rg: RgId) -> RegionLoad {
        let mut total = RegionLoad::default();
        if let Some(info) = self.rg(rg) {
            for r in &info.regions {
                if let Some(l) = self.loads.get(r) {
                    total.add(l);
                }
            }
        }
        total
    }

    /// RGs with a replica on `store`, in id order.
    pub fn rgs_on(&self, store: StoreId) -> Vec<RgId> {
        self.rgs
            .values()
            .filter(|rg| rg.members.contains_key(&store))
            .map(|rg| rg.id)
            .collect()
    }
}

/// Where the engine's executor reads the current view: the live cluster in the server, a
/// fixed or hand-updated view in tests.
/// See `ViewSource::leader_hint`.
pub fn leader_hint(view: &ClusterView, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
    match view.rg(rg) {
        Some(info) => (info.leader, info.members.keys().copied().collect()),
        None => (None, view.stores.keys().copied().collect()),
    }
}

pub trait ViewSource: Send + Sync + 'static {
    fn snapshot(&self) -> ClusterView;

    /// An RG's members and a store's address, without copying the whole view (a step's
    /// command needs only these).
    fn rg_members(&self, rg: RgId) -> Vec<StoreId> {
        self.snapshot()
            .rg(rg)
            .map(|r| r.members.keys().copied().collect())
            .unwrap_or_default()
    }

    fn store_address(&self, store: StoreId) -> Option<String> {
        self.snapshot().store(store).map(|s| s.address.clone())
    }

    /// The RG's leader as last known and its members; for an RG the view does not hold yet,
    /// no leader and every store (whom to ask).
    fn leader_hint(&self, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
        leader_hint(&self.snapshot(), rg)
    }

    /// Bytes the RG's regions hold (a data-moving step's deadline grows with them).
    fn rg_bytes(&self, rg: RgId) -> u64 {
        self.snapshot().rg_bytes(rg)
    }

    /// The RG's regions.
    fn rg_regions(&self, rg: RgId) -> Vec<RegionId> {
        self.snapshot()
            .rg(rg)
            .map(|r| r.regions.iter().copied().collect())
            .unwrap_or_default()
    }

    /// A job succeeded: a view that waits for heartbeats to learn of new RGs and regions
    /// (ten seconds apart by default) takes in what the job is known to have done, so a DDL
    /// call or a scheduler right after it plans against the cluster as it now is. Returns the
    /// RG shapes that changed, for the catalog.
    fn job_succeeded(&self, _effect: &Effect) -> ShapeChanges {
        ShapeChanges::default()
    }

    /// A step succeeded, and the store that ran it described the RG (members, leader, term,
    /// conf_ver, the regions the step made). From the RG's leader (`from_leader`) that is as
    /// good as a heartbeat; a follower's membership may lag, so only its regions count.
    /// Returns the RG shapes that changed, for the catalog.
    fn step_succeeded(
        &self,
        _rg: RgId,
        _ok: &proto::v1::StepOk,
        _from_leader: bool,
    ) -> ShapeChanges {
        ShapeChanges::default()
    }
}

/// RG shapes to write to the catalog (or delete from it) after a change of the view, so a new
/// MC leader starts from them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShapeChanges {
    pub put: Vec<crate::cluster::rgs::RgRecord>,
    pub deleted: Vec<RgId>,
}

impl ShapeChanges {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.deleted.is_empty()
    }
}

impl ViewSource for std::sync::RwLock<ClusterView> {
    fn snapshot(&self) -> ClusterView {
        self.read().expect("view lock").clone()
    }
}

impl ClusterView {
    /// Takes in what a succeeded job did to the cluster's shape: RGs and regions created,
    /// split, merged or deleted. Members and leaders are left to the stores' reports (see
    /// `apply_step`), which their Raft term and conf_ver order.
    pub fn apply_effect(&mut self, effect: &Effect) {
        match effect {
            Effect::RgCreated {
                rg,
                members,
                leader,
                regions,
            } => {
                self.rgs.entry(*rg).or_insert_with(|| RgInfo {
                    id: *rg,
                    members: members.iter().map(|s| (*s, Role::Voter)).collect(),
                    leader: *leader,
                    conf_ver: 1,
                    heard: true,
                    ..Default::default()
                });
                self.add_new_regions(*rg, regions);
            }
            Effect::RegionsCreated { rg, regions } => self.add_new_regions(*rg, regions),
            Effect::RgDeleted { rg } => {
                self.retired.insert(*rg);
                if let Some(info) = self.rgs.remove(rg) {
                    for r in info.regions {
                        self.regions.remove(&r);
                        self.loads.remove(&r);
                    }
                }
            }
            Effect::RgOffline { rg, offline } => {
                if let Some(info) = self.rgs.get_mut(rg) {
                    info.offline = *offline;
                }
            }
            Effect::RgSplit {
                rg,
                new_rg,
                regions,
            } => {
                let Some(parent) = self.rgs.get_mut(rg) else {
                    return;
                };
                for r in regions {
                    parent.regions.remove(r);
                }
                let child = RgInfo {
                    id: *new_rg,
                    regions: regions.iter().copied().collect(),
                    ..parent.clone()
                };
                for r in regions {
                    if let Some(x) = self.regions.get_mut(r) {
                        x.rg = *new_rg;
                    }
                }
                self.rgs.entry(*new_rg).or_insert(child);
            }
            Effect::RgsMerged { source, target } => {
                self.retired.insert(*source);
                let Some(src) = self.rgs.remove(source) else {
                    return;
                };
                for r in &src.regions {
                    if let Some(x) = self.regions.get_mut(r) {
                        x.rg = *target;
                    }
                }
                if let Some(t) = self.rgs.get_mut(target) {
                    t.regions.extend(src.regions);
                }
            }
            Effect::RegionCreated {
                rg,
                region,
                object,
                start,
                end,
            } => {
                if let Some(info) = self.rgs.get_mut(rg) {
                    info.regions.insert(*region);
                    self.regions.entry(*region).or_insert_with(|| RegionInfo {
                        id: *region,
                        rg: *rg,
                        object: *object,
                        start: start.clone(),
                        end: end.clone(),
                        version: 1,
                        size_bytes: 0,
                        keys: 0,
                    });
                }
            }
            Effect::RegionSplit {
                region,
                at,
                new_region,
            } => {
                if self.regions.contains_key(new_region) {
                    // The step's outcome already brought both halves in.
                    return;
                }
                let Some(left) = self.regions.get_mut(region) else {
                    return;
                };
                let right = RegionInfo {
                    id: *new_region,
                    start: at.clone(),
                    size_bytes: left.size_bytes / 2,
                    keys: left.keys / 2,
                    ..left.clone()
                };
                left.end = at.clone();
                left.version += 1;
                left.size_bytes -= right.size_bytes;
                left.keys -= right.keys;
                let rg = left.rg;
                let right = RegionInfo {
                    version: left.version,
                    ..right
                };
                self.regions.insert(*new_region, right);
                if let Some(info) = self.rgs.get_mut(&rg) {
                    info.regions.insert(*new_region);
                }
            }
            Effect::RegionsMerged { left, right } => {
                let Some(r) = self.regions.remove(right) else {
                    return;
                };
                self.loads.remove(right);
                if let Some(info) = self.rgs.get_mut(&r.rg) {
                    info.regions.remove(right);
                }
                if let Some(l) = self.regions.get_mut(left)
                    && l.end == r.start
                {
                    l.end = r.end;
                    l.version = l.version.max(r.version) + 1;
                    l.size_bytes = l.size_bytes.saturating_add(r.size_bytes);
                    l.keys = l.keys.saturating_add(r.keys);
                }
            }
            Effect::RegionDeleted { region } => {
                self.loads.remove(region);
                if let Some(r) = self.regions.remove(region)
                    && let Some(info) = self.rgs.get_mut(&r.rg)
                {
                    info.regions.remove(region);
                }
            }
            Effect::None
            | Effect::ReplicaAdded { .. }
            | Effect::ReplicaRemoved { .. }
            | Effect::ReplicaMoved { .. }
            | Effect::LeaderMoved { .. } => {}
        }
    }
}
