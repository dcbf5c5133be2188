//! What the MC knows of the cluster right now: stores, RGs and regions, as built from
//! heartbeats and the catalog. Job validation and planning read it; they never do I/O.

use std::collections::{BTreeMap, BTreeSet};

use super::index::{Table, ViewIndex};

mod effects;

use crate::cluster::effect::Effect;
use crate::ids::{ObjectId, RegionId, RgId, StoreId};

pub use super::info::{RegionInfo, RegionLoad, RgInfo, Role, StoreInfo, StoreState};

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
    fn add_new_regions(&mut self, rg: RgId, regions: &[crate::cluster::effect::NewRegion]) {
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
                self.put_region(r.info(rg, 1));
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

/// See `ViewSource::leader_hint`.
fn wrapped(set: Option<&BTreeSet<RgId>>, from: RgId) -> impl Iterator<Item = RgId> + '_ {
    set.into_iter()
        .flat_map(move |s| s.range(from..).chain(s.range(..from)))
        .copied()
}

#[cfg(test)]
mod tests;
