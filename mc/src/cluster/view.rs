//! What the MC knows of the cluster right now: stores, RGs and regions, as built from
//! heartbeats and the catalog. Job validation and planning read it; they never do I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::index::{Table, ViewIndex};

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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Voter,
    Learner,
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

    fn add(&mut self, other: &RegionLoad) {
        self.read_bytes_per_sec += other.read_bytes_per_sec;
        self.write_bytes_per_sec += other.write_bytes_per_sec;
    }
}

/// The view's tables are read by anyone (`view.rgs.values()`) and changed only through its
/// methods, which keep the index (`cluster::index`) and the change log in step.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub stores: Table<StoreId, StoreInfo>,
    pub rgs: super::index::RgTable,
    pub regions: super::index::RegionTable,
    /// Only regions with traffic: most are idle, and a million idle regions should cost no
    /// memory here.
    pub loads: Table<RegionId, RegionLoad>,
    /// Split keys stores reported, for regions large enough to have one.
    pub split_keys: Table<RegionId, Vec<u8>>,
    /// Replicas stores report of RGs that do not list them as members, with when each was
    /// first reported so: left behind by a store that was away while it was removed.
    pub strays: BTreeMap<(StoreId, RgId), u64>,
    /// RGs deleted or merged away (tombstones in the catalog): a replica a store still holds
    /// of one is a stray. An RG the view does not know and that is not here is left alone: a
    /// SplitRg or CreateRg that ended in doubt may have made it, with data only it holds.
    pub retired: BTreeSet<RgId>,
    /// Stores in maintenance, until when (see `schedule::maintenance`).
    pub maintenance: BTreeMap<StoreId, u64>,
    index: ViewIndex,
}

/// Two views are equal when their tables are; the index follows from them.
impl PartialEq for ClusterView {
    fn eq(&self, other: &Self) -> bool {
        self.stores == other.stores
            && self.rgs == other.rgs
            && self.regions == other.regions
            && self.loads == other.loads
            && self.split_keys == other.split_keys
    }
}

impl Eq for ClusterView {}

/// What of an RG the schedulers act on: a change of anything else (a term, an applied index)
/// is not logged.
fn rg_shape_eq(a: &RgInfo, b: &RgInfo) -> bool {
    a.members == b.members
        && a.leader == b.leader
        && a.regions == b.regions
        && a.offline == b.offline
        && a.heard == b.heard
}

impl ClusterView {
    /// Adds or replaces a store. A change of its state, labels or capacity logs every RG with
    /// a replica on it: what the schedulers decide of those may change.
    pub fn put_store(&mut self, info: StoreInfo) {
        let changed = self.stores.0.get(&info.id) != Some(&info);
        let id = info.id;
        self.stores.0.insert(id, info);
        if changed {
            self.store_changed(id);
        }
    }

    /// Changes a store in place; see `put_store`.
    pub fn update_store<R>(
        &mut self,
        id: StoreId,
        f: impl FnOnce(&mut StoreInfo) -> R,
    ) -> Option<R> {
        let info = self.stores.0.get_mut(&id)?;
        let before = info.clone();
        let r = f(info);
        if *info != before {
            self.store_changed(id);
        }
        Some(r)
    }

    fn store_changed(&mut self, id: StoreId) {
        let rgs: Vec<RgId> = self.rgs_on(id);
        for rg in rgs {
            self.index.record(rg);
        }
    }

    /// Adds or replaces an RG (its region set included; the regions themselves are
    /// `put_region`'s).
    pub fn put_rg(&mut self, info: RgInfo) {
        let id = info.id;
        let changed = match self.rgs.get(&id) {
            Some(old) => {
                let changed = !rg_shape_eq(old, &info);
                if changed {
                    let old = old.clone();
                    self.index.remove_rg(&old);
                    self.index.add_rg(&info);
                }
                changed
            }
            None => {
                self.index.add_rg(&info);
                true
            }
        };
        self.rgs.insert(info);
        if changed {
            self.index.record(id);
        }
    }

    /// Changes an RG in place; see `put_rg`.
    pub fn update_rg<R>(&mut self, id: RgId, f: impl FnOnce(&mut RgInfo) -> R) -> Option<R> {
        let info = self.rgs.get_mut(&id)?;
        let before = info.clone();
        let r = f(info);
        if !rg_shape_eq(&before, info) {
            let after = info.clone();
            self.index.remove_rg(&before);
            self.index.add_rg(&after);
            self.index.record(id);
        }
        Some(r)
    }

    /// Removes an RG (not its regions: `remove_region` each).
    pub fn remove_rg(&mut self, id: RgId) -> Option<RgInfo> {
        let info = self.rgs.remove(&id)?;
        self.index.remove_rg(&info);
        self.index.record(id);
        Some(info)
    }

    /// Adds or replaces a region (its RG's region set is `put_rg`'s).
    pub fn put_region(&mut self, info: RegionInfo) {
        let id = info.id;
        match self.regions.get(&id) {
            Some(old) if *old == info => return,
            // Same RG and object (a heartbeat's new size): only the RG's totals change.
            Some(old) if old.rg == info.rg && old.object == info.object => {
                let (bytes, keys) = (old.size_bytes, old.keys);
                self.index.add_size(info.rg, bytes, keys, false);
                self.index
                    .add_size(info.rg, info.size_bytes, info.keys, true);
                self.index.watch_region(id, bytes, keys, false);
                self.index
                    .watch_region(id, info.size_bytes, info.keys, true);
            }
            Some(old) => {
                let old = old.clone();
                if let Some(j) = &mut self.index.route_journal
                    && (old.rg != info.rg || old.start != info.start)
                {
                    j.push((id, old.start.to_vec()));
                }
                self.unindex_region(&old);
                if old.rg != info.rg {
                    self.index.record(old.rg);
                }
                self.index_region(&info);
            }
            None => self.index_region(&info),
        }
        self.index.record(info.rg);
        self.regions.insert(info);
    }

    fn leader_of(&self, rg: RgId) -> Option<StoreId> {
        self.rgs.get(&rg).and_then(|r| r.leader)
    }

    fn index_region(&mut self, r: &RegionInfo) {
        self.index.count_object(r.object, r.rg, true);
        self.index.add_size(r.rg, r.size_bytes, r.keys, true);
        self.index.watch_region(r.id, r.size_bytes, r.keys, true);
        if let Some(load) = self.loads.0.get(&r.id).copied() {
            let leader = self.leader_of(r.rg);
            self.index.add_load(r.rg, leader, &load, true);
        }
    }

    fn unindex_region(&mut self, r: &RegionInfo) {
        self.index.count_object(r.object, r.rg, false);
        self.index.add_size(r.rg, r.size_bytes, r.keys, false);
        self.index.watch_region(r.id, r.size_bytes, r.keys, false);
        if let Some(load) = self.loads.0.get(&r.id).copied() {
            let leader = self.leader_of(r.rg);
            self.index.add_load(r.rg, leader, &load, false);
        }
    }

    /// Changes a region in place; see `put_region`.
    pub fn update_region<R>(
        &mut self,
        id: RegionId,
        f: impl FnOnce(&mut RegionInfo) -> R,
    ) -> Option<R> {
        let mut info = self.regions.get(&id)?.clone();
        let r = f(&mut info);
        self.put_region(info);
        Some(r)
    }

    /// Removes a region, its load and split key (not its RG's entry of it: `update_rg`).
    pub fn remove_region(&mut self, id: RegionId) -> Option<RegionInfo> {
        let info = self.regions.get(&id)?.clone();
        self.unindex_region(&info);
        if let Some(j) = &mut self.index.route_journal {
            j.push((id, info.start.to_vec()));
        }
        self.regions.remove(&id);
        self.loads.0.remove(&id);
        self.split_keys.0.remove(&id);
        self.index.record(info.rg);
        Some(info)
    }

    /// Sets a region's traffic (zero forgets it). Traffic changes every interval and is not
    /// logged; the RG's and its leader's totals follow it.
    pub fn set_load(&mut self, id: RegionId, load: RegionLoad) {
        let old = if load.total() == 0 {
            self.loads.0.remove(&id)
        } else {
            self.loads.0.insert(id, load)
        };
        // No traffic reported for a region without traffic is no change.
        if old.unwrap_or_default() == load {
            return;
        }
        self.index.loads_seq += 1;
        if let Some(rg) = self.regions.get(&id).map(|r| r.rg) {
            let leader = self.leader_of(rg);
            if let Some(old) = old {
                self.index.add_load(rg, leader, &old, false);
            }
            self.index.add_load(rg, leader, &load, true);
        }
    }

    pub fn clear_loads(&mut self) {
        let ids: Vec<RegionId> = self.loads.keys().copied().collect();
        for id in ids {
            self.set_load(id, RegionLoad::default());
        }
    }

    /// Sets the split key a store reported for a region (empty forgets it).
    pub fn set_split_key(&mut self, id: RegionId, key: Vec<u8>) {
        if key.is_empty() {
            self.split_keys.0.remove(&id);
        } else if self.split_keys.0.get(&id) != Some(&key) {
            self.split_keys.0.insert(id, key);
        }
    }

    /// The RGs whose shape changed at or after `seq` (see `ChangeLog`); `None` when the log
    /// no longer reaches back that far.
    pub fn changed_since(&self, seq: u64) -> Option<BTreeSet<RgId>> {
        self.index.changes.since(seq)
    }

    /// The change log's position now.
    pub fn change_seq(&self) -> u64 {
        self.index.changes.seq()
    }

    /// RGs with a replica on `store`, in id order.
    pub fn replicas_on(&self, store: StoreId) -> impl Iterator<Item = RgId> + '_ {
        self.index
            .replicas
            .get(&store)
            .into_iter()
            .flatten()
            .copied()
    }

    /// RGs with a replica on `store`, from `from` up, then those below it: the replica
    /// balancer, which ranks only a sample of a store's RGs, starts at another place each run.
    pub fn replicas_on_from(&self, store: StoreId, from: RgId) -> impl Iterator<Item = RgId> + '_ {
        wrapped(self.index.replicas.get(&store), from)
    }

    pub fn replica_count(&self, store: StoreId) -> usize {
        self.index.replicas.get(&store).map_or(0, BTreeSet::len)
    }

    /// RGs `store` leads, in id order.
    pub fn led_by(&self, store: StoreId) -> impl Iterator<Item = RgId> + '_ {
        self.index
            .leaders
            .get(&store)
            .into_iter()
            .flatten()
            .copied()
    }

    pub fn leader_count(&self, store: StoreId) -> usize {
        self.index.leaders.get(&store).map_or(0, BTreeSet::len)
    }

    /// A number that moves whenever a region's traffic changes.
    pub fn loads_seq(&self) -> u64 {
        self.index.loads_seq
    }

    /// From now on, remember regions removed, moved or given another start until
    /// `take_route_journal` (the live cluster's route index reads it).
    pub fn keep_route_journal(&mut self) {
        self.index.route_journal.get_or_insert_with(Vec::new);
    }

    /// Regions removed, moved to another RG or given another start since the last call, each
    /// with the start it had.
    pub fn take_route_journal(&mut self) -> Vec<(RegionId, Vec<u8>)> {
        self.index
            .route_journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The object's regions counted by RG (empty for an object without regions).
    pub fn object_rgs(&self, object: ObjectId) -> &[(RgId, u32)] {
        self.index
            .objects
            .get(&object)
            .map_or(&[], |rgs| rgs.as_slice())
    }

    /// Each object in `objects` with its regions counted by RG, in object order.
    pub fn objects_in(
        &self,
        objects: std::ops::RangeInclusive<ObjectId>,
    ) -> impl Iterator<Item = (ObjectId, &[(RgId, u32)])> + '_ {
        self.index
            .objects
            .range(objects)
            .map(|(o, rgs)| (*o, rgs.as_slice()))
    }

    /// Counts affinity groups by `map` from now on (see `cluster::affinity`): the groups of
    /// objects whose root changed are looked at again; the first map of a loaded view is a
    /// pass over every object.
    pub fn set_affinity(&mut self, map: std::sync::Arc<super::affinity::Affinity>) {
        self.index.affinity.set_map(&self.index.objects, map);
    }

    /// The map the view counts affinity groups by.
    pub fn affinity(&self) -> &std::sync::Arc<super::affinity::Affinity> {
        &self.index.affinity.map
    }

    /// Affinity groups with regions in more than one RG, by the view's map.
    pub fn spread_groups(&self) -> &super::affinity::Spread {
        &self.index.affinity.spread
    }

    /// Affinity groups with regions in more than one RG by `map`, found by walking every
    /// object (for a map the view does not count by).
    pub fn walk_spread(&self, map: &super::affinity::Affinity) -> BTreeSet<ObjectId> {
        super::affinity::walk_spread(map, &self.index.objects)
    }

    /// The regions of the group rooted at `root` (by `map`) counted by RG, in RG order.
    pub fn group_rgs(
        &self,
        map: &super::affinity::Affinity,
        root: ObjectId,
    ) -> BTreeMap<RgId, usize> {
        let mut out = BTreeMap::new();
        for object in map.members(root) {
            for (rg, n) in self.object_rgs(object) {
                *out.entry(*rg).or_default() += *n as usize;
            }
        }
        out
    }

    /// Keeps sets of the regions past `watch`'s sizes from now on (rebuilt here: a pass
    /// over every region, when the schedulers' config changes them).
    pub fn set_watch(&mut self, watch: super::index::Watch) {
        if self.index.watch == Some(watch) {
            return;
        }
        self.index.watch = Some(watch);
        self.index.small.clear();
        self.index.large.clear();
        let all: Vec<(RegionId, u64, u64)> = self
            .regions
            .values()
            .map(|r| (r.id, r.size_bytes, r.keys))
            .collect();
        for (id, bytes, keys) in all {
            self.index.watch_region(id, bytes, keys, true);
        }
    }

    /// The sizes watched, and the regions smaller than the small one and larger than the
    /// large ones.
    pub fn watched(
        &self,
    ) -> Option<(
        super::index::Watch,
        &BTreeSet<RegionId>,
        &BTreeSet<RegionId>,
    )> {
        self.index
            .watch
            .map(|w| (w, &self.index.small, &self.index.large))
    }

    /// RGs restored from the catalog and not heard from in this term.
    pub fn unheard(&self) -> &BTreeSet<RgId> {
        &self.index.unheard
    }

    /// Regions a job created (version 1, empty), into an RG the view knows.
    fn add_new_regions(&mut self, rg: RgId, regions: &[crate::jobs::plan::NewRegion]) {
        if !self.rgs.contains_key(&rg) {
            return;
        }
        self.update_rg(rg, |info| {
            for r in regions {
                info.regions.insert(r.id);
            }
        });
        for r in regions {
            if !self.regions.contains_key(&r.id) {
                self.put_region(RegionInfo {
                    id: r.id,
                    rg,
                    object: r.object,
                    start: r.start.clone().into(),
                    end: r.end.clone().into(),
                    version: 1,
                    ..Default::default()
                });
            }
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
        self.rg_totals(rg).bytes
    }

    /// The RG's regions summed: bytes, keys, traffic.
    pub fn rg_totals(&self, rg: RgId) -> super::index::RgTotals {
        self.index.rg_totals.get(rg).copied().unwrap_or_default()
    }

    /// RGs whose regions hold anything or serve traffic, with their totals, in id order for
    /// ids the dense table holds.
    pub fn all_rg_totals(&self) -> impl Iterator<Item = (RgId, &super::index::RgTotals)> + '_ {
        self.index.rg_totals.iter()
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
        self.index
            .store_load
            .iter()
            .map(|(s, l)| (*s, *l))
            .collect()
    }

    /// The traffic `store` serves as a leader.
    pub fn store_load(&self, store: StoreId) -> RegionLoad {
        self.index
            .store_load
            .get(&store)
            .copied()
            .unwrap_or_default()
    }

    /// An RG's traffic.
    pub fn rg_load(&self, rg: RgId) -> RegionLoad {
        self.rg_totals(rg).load
    }

    /// RGs with a replica on `store`, in id order.
    pub fn rgs_on(&self, store: StoreId) -> Vec<RgId> {
        self.replicas_on(store).collect()
    }
}

/// Where the engine's executor reads the current view: the live cluster in the server, a
/// fixed or hand-updated view in tests.
/// See `ViewSource::leader_hint`.
fn wrapped(set: Option<&BTreeSet<RgId>>, from: RgId) -> impl Iterator<Item = RgId> + '_ {
    set.into_iter()
        .flat_map(move |s| s.range(from..).chain(s.range(..from)))
        .copied()
}

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
    /// conf_ver, the regions the step made): the view takes what the step itself made, as the
    /// outcome confirms it (see `cluster::outcome`).
    /// Returns the RG shapes that changed, for the catalog.
    fn step_succeeded(
        &self,
        _rg: RgId,
        _step: &crate::jobs::plan::AtomicStep,
        _ok: &proto::v1::StepOk,
        _from_leader: bool,
    ) -> ShapeChanges {
        ShapeChanges::default()
    }

    /// The shapes a job or step wrote are committed: what the catalog holds of those RGs is
    /// what that write put there, whatever was written for them meanwhile.
    fn shapes_committed(&self, _shapes: &ShapeChanges) {}
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
                if !self.rgs.contains_key(rg) {
                    self.put_rg(RgInfo {
                        id: *rg,
                        members: members.iter().map(|s| (*s, Role::Voter)).collect(),
                        leader: *leader,
                        conf_ver: 1,
                        heard: true,
                        ..Default::default()
                    });
                }
                self.add_new_regions(*rg, regions);
            }
            Effect::RegionsCreated { rg, regions } => self.add_new_regions(*rg, regions),
            Effect::RgDeleted { rg } => {
                self.retired.insert(*rg);
                if let Some(info) = self.remove_rg(*rg) {
                    for r in info.regions {
                        self.remove_region(r);
                    }
                }
            }
            Effect::RgOffline { rg, offline } => {
                self.update_rg(*rg, |info| info.offline = *offline);
            }
            Effect::RgSplit {
                rg,
                new_rg,
                regions,
            } => {
                let Some(parent) = self.update_rg(*rg, |parent| {
                    for r in regions {
                        parent.regions.remove(r);
                    }
                    parent.clone()
                }) else {
                    return;
                };
                for r in regions {
                    self.update_region(*r, |x| x.rg = *new_rg);
                }
                if !self.rgs.contains_key(new_rg) {
                    // The stores seed the new RG at term 0 with membership version 1: its
                    // leader's reports start there, not at the parent's term (which would make
                    // every one of them look stale).
                    self.put_rg(RgInfo {
                        id: *new_rg,
                        regions: regions.iter().copied().collect(),
                        term: 0,
                        conf_ver: 1,
                        applied_index: 0,
                        ..parent
                    });
                }
            }
            Effect::RgsMerged { source, target } => {
                self.retired.insert(*source);
                let Some(src) = self.remove_rg(*source) else {
                    return;
                };
                for r in &src.regions {
                    self.update_region(*r, |x| x.rg = *target);
                }
                self.update_rg(*target, |t| t.regions.extend(src.regions));
            }
            Effect::RegionCreated {
                rg,
                region,
                object,
                start,
                end,
            } => {
                if self.rgs.contains_key(rg) {
                    self.update_rg(*rg, |info| info.regions.insert(*region));
                    if !self.regions.contains_key(region) {
                        self.put_region(RegionInfo {
                            id: *region,
                            rg: *rg,
                            object: *object,
                            start: start.clone().into(),
                            end: end.clone().into(),
                            version: 1,
                            size_bytes: 0,
                            keys: 0,
                        });
                    }
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
                let Some(left) = self.region(*region).cloned() else {
                    return;
                };
                let half = RegionInfo {
                    size_bytes: left.size_bytes / 2,
                    keys: left.keys / 2,
                    ..left.clone()
                };
                let left = RegionInfo {
                    end: at.clone().into(),
                    version: left.version + 1,
                    size_bytes: left.size_bytes - half.size_bytes,
                    keys: left.keys - half.keys,
                    ..left
                };
                let right = RegionInfo {
                    id: *new_region,
                    start: at.clone().into(),
                    version: left.version,
                    ..half
                };
                let rg = left.rg;
                self.put_region(left);
                self.put_region(right);
                self.split_keys.0.remove(region);
                self.update_rg(rg, |info| info.regions.insert(*new_region));
            }
            Effect::RegionsMerged { left, right } => {
                let Some(r) = self.remove_region(*right) else {
                    return;
                };
                self.update_rg(r.rg, |info| info.regions.remove(right));
                self.update_region(*left, |l| {
                    if l.end == r.start {
                        l.end = r.end.clone();
                        l.version = l.version.max(r.version) + 1;
                        l.size_bytes = l.size_bytes.saturating_add(r.size_bytes);
                        l.keys = l.keys.saturating_add(r.keys);
                    }
                });
                self.split_keys.0.remove(left);
            }
            Effect::RegionDeleted { region } => {
                if let Some(r) = self.remove_region(*region) {
                    self.update_rg(r.rg, |info| info.regions.remove(region));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The index rebuilt from the tables alone.
    fn rebuilt(v: &ClusterView) -> ViewIndex {
        let mut ix = ViewIndex {
            watch: v.index.watch,
            ..Default::default()
        };
        for r in v.regions.values() {
            ix.count_object(r.object, r.rg, true);
            ix.add_size(r.rg, r.size_bytes, r.keys, true);
            ix.watch_region(r.id, r.size_bytes, r.keys, true);
            if let Some(load) = v.loads.get(&r.id) {
                ix.add_load(r.rg, None, load, true);
            }
        }
        for rg in v.rgs.values() {
            ix.add_rg(rg);
        }
        ix
    }

    fn same(a: &ViewIndex, b: &ViewIndex) -> bool {
        let sorted = |ix: &ViewIndex| -> BTreeMap<u64, Vec<(u64, u32)>> {
            ix.objects
                .iter()
                .map(|(o, rgs)| {
                    let mut rgs = rgs.as_slice().to_vec();
                    rgs.sort();
                    (*o, rgs)
                })
                .collect()
        };
        a.replicas == b.replicas
            && a.leaders == b.leaders
            && sorted(a) == sorted(b)
            && a.unheard == b.unheard
            && a.rg_totals == b.rg_totals
            && a.small == b.small
            && a.large == b.large
            && a.store_load == b.store_load
    }

    #[test]
    fn the_index_stays_what_the_tables_say_through_random_changes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut v = ClusterView::default();
        v.set_watch(super::super::index::Watch {
            small_bytes: 20,
            large_bytes: 80,
            large_keys: 8,
        });
        for id in 1..=6 {
            v.put_store(StoreInfo {
                id,
                address: String::new(),
                state: StoreState::Up,
                labels: Default::default(),
                capacity_bytes: 0,
            });
        }
        // Affinity groups of three objects in a row; the map changes now and then (a global
        // index put in its own group, a new grouping).
        let grouping = |width: u64| -> std::sync::Arc<super::super::affinity::Affinity> {
            std::sync::Arc::new(super::super::affinity::Affinity::new(
                (1..=30u64)
                    .map(|o| (o, 1 + (o - 1) / width * width))
                    .collect(),
            ))
        };
        v.set_affinity(grouping(3));
        for step in 0..5_000 {
            let rg = 1 + next(40);
            let region = 1 + next(200);
            if step % 700 == 699 {
                v.set_affinity(grouping(1 + next(5)));
            }
            match next(10) {
                0 | 1 => v.put_rg(RgInfo {
                    id: rg,
                    members: (0..3).map(|_| (1 + next(6), Role::Voter)).collect(),
                    leader: Some(1 + next(6)),
                    regions: (0..next(4)).map(|_| 1 + next(200)).collect(),
                    heard: next(2) == 0,
                    ..Default::default()
                }),
                2 => {
                    v.update_rg(rg, |info| {
                        info.leader = info.members.keys().next().copied();
                        info.members.insert(1 + next(6), Role::Learner);
                    });
                }
                3 => {
                    v.remove_rg(rg);
                }
                4 | 5 => v.put_region(RegionInfo {
                    id: region,
                    rg,
                    object: 1 + next(30),
                    size_bytes: next(100),
                    keys: next(10),
                    ..Default::default()
                }),
                6 => {
                    v.update_region(region, |r| r.object = 1 + next(30));
                }
                7 => {
                    v.remove_region(region);
                }
                8 if step % 2 == 0 => v.set_load(
                    region,
                    RegionLoad {
                        read_bytes_per_sec: next(3) * 100,
                        write_bytes_per_sec: next(2) * 7,
                    },
                ),
                _ => {
                    let store = 1 + next(6);
                    v.update_store(store, |s| s.state = StoreState::Down);
                }
            }
            let want = rebuilt(&v);
            assert!(
                same(&v.index, &want),
                "after step {step}: {:?} {:?} / {:?} {:?} / {:?} {:?}",
                v.index.rg_totals.iter().collect::<Vec<_>>(),
                want.rg_totals.iter().collect::<Vec<_>>(),
                v.index.store_load,
                want.store_load,
                v.index.leaders,
                want.leaders
            );
            let spread = v.spread_groups();
            let walked = v.walk_spread(v.affinity());
            assert_eq!(
                spread.groups().collect::<BTreeSet<_>>(),
                walked,
                "after step {step}: spread groups kept vs walked"
            );
            for g in &walked {
                let rgs: Vec<u64> = v.group_rgs(v.affinity(), *g).into_keys().collect();
                for rg in &rgs {
                    assert!(
                        spread.in_rg(*rg).any(|x| x == *g),
                        "step {step}: {g} in {rg}"
                    );
                }
            }
            assert!(
                (1..=40).all(|rg| spread.in_rg(rg).all(|g| walked.contains(&g))),
                "step {step}: a group listed by RG is not spread"
            );
        }
        // Every change was logged: reading from the start sees every RG touched.
        assert!(v.changed_since(0).is_some_and(|c| !c.is_empty()));
        assert_eq!(v.changed_since(v.change_seq()), Some(BTreeSet::new()));
        let rg = *v.rgs.keys().next().unwrap();
        let before = v.change_seq();
        v.update_rg(rg, |info| info.applied_index += 1);
        assert_eq!(
            v.changed_since(before),
            Some(BTreeSet::new()),
            "an applied index is not a change of shape"
        );
        v.update_rg(rg, |info| info.offline = !info.offline);
        assert_eq!(v.changed_since(before), Some([rg].into()));
    }
}
