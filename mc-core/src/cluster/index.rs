//! What the view keeps beside its tables so a scheduler round costs what changed, not a pass
//! over a million regions: each store's replicas and led RGs, each data object's regions, the
//! RGs not heard from in this term, and a change log of the RGs whose shape changed.
//!
//! The tables are read-only to everyone but the view (`Table` derefs to its map; the view's
//! `put_*`/`update_*`/`remove_*` methods are the only writers), so the index cannot drift from
//! what it indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::dense::DenseMap;
use crate::ids::{ObjectId, RegionId, RgId, StoreId};

/// A table of the view: read through `Deref`, written only by the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Table<K: Ord, V>(pub(super) BTreeMap<K, V>);

impl<K: Ord, V> Default for Table<K, V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord, V> Deref for Table<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.0
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a Table<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Entries the change log keeps; a reader further behind than that gets `None` and looks at
/// everything (as after a failover, when every RG is new to the view anyway).
const CHANGE_LOG_CAPACITY: usize = 1 << 18;

/// RGs whose shape changed, numbered: a reader keeps the number it read up to.
#[derive(Clone, Debug, Default)]
pub struct ChangeLog {
    next: u64,
    log: VecDeque<(u64, RgId)>,
    /// Changes numbered below this fell off the front: a cursor there has missed some.
    dropped_below: u64,
}

impl ChangeLog {
    fn record(&mut self, rg: RgId) {
        // A heartbeat touching one RG twice in a row logs it once: the entry moves up to the
        // new number, so a reader whose cursor lies between the two still sees it.
        if let Some(last) = self.log.back_mut()
            && last.1 == rg
        {
            last.0 = self.next;
            self.next += 1;
            return;
        }
        if self.log.len() == CHANGE_LOG_CAPACITY
            && let Some((seq, _)) = self.log.pop_front()
        {
            self.dropped_below = seq + 1;
        }
        self.log.push_back((self.next, rg));
        self.next += 1;
    }

    /// The number the next change gets: read up to here.
    pub fn seq(&self) -> u64 {
        self.next
    }

    /// The RGs changed at or after `seq`, each once; `None` when the log no longer reaches
    /// back that far.
    pub fn since(&self, seq: u64) -> Option<BTreeSet<RgId>> {
        // Numbers are increasing but not contiguous (a repeated RG moves up).
        let dropped = self.dropped_below;
        if seq < dropped || seq > self.next {
            // Too far behind, or from another view's numbering (ahead of this one).
            return None;
        }
        let from = self.log.partition_point(|(s, _)| *s < seq);
        Some(self.log.range(from..).map(|(_, rg)| *rg).collect())
    }
}

pub use super::affinity::ObjectRgs;

/// An RG's regions summed: bytes, keys, traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RgTotals {
    pub bytes: u64,
    pub keys: u64,
    pub load: super::RegionLoad,
}

#[derive(Clone, Debug, Default)]
pub struct ViewIndex {
    /// RGs with a replica on each store.
    pub(super) replicas: HashMap<StoreId, BTreeSet<RgId>>,
    /// RGs each store leads.
    pub(super) leaders: HashMap<StoreId, BTreeSet<RgId>>,
    /// Each data object's regions, counted by RG: an affinity group spread over RGs shows
    /// without looking at its regions, and a subtree of objects is a range.
    pub(super) objects: BTreeMap<ObjectId, ObjectRgs>,
    /// RGs restored from the catalog and not heard from in this term.
    pub(super) unheard: BTreeSet<RgId>,
    /// Each RG's regions summed (kept for RG ids whose regions are known even before the
    /// RG itself is).
    pub(super) rg_totals: DenseMap<RgTotals>,
    /// Traffic each store serves, as the leader of its RGs.
    pub(super) store_load: HashMap<StoreId, super::RegionLoad>,
    pub(super) changes: ChangeLog,
    /// Region sizes the split and merge checkers ask about, and the regions past them.
    pub(super) watch: Option<Watch>,
    pub(super) small: BTreeSet<RegionId>,
    pub(super) large: BTreeSet<RegionId>,
    /// Regions removed, moved to another RG or given another start, with the start they had:
    /// what the route index must look at beyond the RGs it syncs (kept only when asked for,
    /// by the live cluster; see `ClusterView::keep_route_journal`).
    pub(super) route_journal: Option<Vec<(RegionId, Vec<u8>)>>,
    /// Moves whenever a region's traffic changes (see `ClusterView::loads_seq`).
    pub(super) loads_seq: u64,
    /// Affinity groups spread over RGs (see `cluster::affinity`).
    pub(super) affinity: super::affinity::AffinityIndex,
}

/// Thresholds the view keeps sets of regions for, so a full pass of the split and merge
/// checkers reads the few regions past them instead of every region: regions smaller than
/// `small_bytes`, and regions larger than `large_bytes` or holding more than `large_keys`
/// keys. Set from the schedulers' config (see `ScheduleConfig::watch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    pub small_bytes: u64,
    pub large_bytes: u64,
    pub large_keys: u64,
}

impl Watch {
    pub fn is_small(&self, bytes: u64) -> bool {
        bytes < self.small_bytes
    }

    pub fn is_large(&self, bytes: u64, keys: u64) -> bool {
        bytes > self.large_bytes || keys > self.large_keys
    }
}

impl ViewIndex {
    /// Counts a region in (or out of) the watched sets.
    pub(super) fn watch_region(&mut self, id: RegionId, bytes: u64, keys: u64, add: bool) {
        let Some(w) = self.watch else { return };
        if add {
            if w.is_small(bytes) {
                self.small.insert(id);
            }
            if w.is_large(bytes, keys) {
                self.large.insert(id);
            }
        } else {
            self.small.remove(&id);
            self.large.remove(&id);
        }
    }

    pub(super) fn add_rg(&mut self, rg: &super::RgInfo) {
        for s in rg.members.keys() {
            self.replicas.entry(*s).or_default().insert(rg.id);
        }
        if let Some(l) = rg.leader {
            self.leaders.entry(l).or_default().insert(rg.id);
            if let Some(t) = self.rg_totals.get(rg.id).filter(|t| t.load.total() > 0) {
                let load = t.load;
                plus(self.store_load.entry(l).or_default(), &load);
            }
        }
        if !rg.heard {
            self.unheard.insert(rg.id);
        }
    }

    pub(super) fn remove_rg(&mut self, rg: &super::RgInfo) {
        for s in rg.members.keys() {
            remove_from(&mut self.replicas, *s, rg.id);
        }
        if let Some(l) = rg.leader {
            remove_from(&mut self.leaders, l, rg.id);
            if let Some(t) = self.rg_totals.get(rg.id) {
                let load = t.load;
                minus(&mut self.store_load, l, &load);
            }
        }
        self.unheard.remove(&rg.id);
    }

    pub(super) fn record(&mut self, rg: RgId) {
        self.changes.record(rg);
    }

    /// A region of `object` now counts for `rg` (`add`) or no longer does.
    pub(super) fn count_object(&mut self, object: ObjectId, rg: RgId, add: bool) {
        let mut rgs = self
            .objects
            .remove(&object)
            .map(ObjectRgs::into_vec)
            .unwrap_or_default();
        let mut moved = false;
        match rgs.iter().position(|(r, _)| *r == rg) {
            Some(i) if add => rgs[i].1 += 1,
            Some(i) => {
                rgs[i].1 -= 1;
                if rgs[i].1 == 0 {
                    rgs.swap_remove(i);
                    moved = true;
                }
            }
            None if add => {
                rgs.push((rg, 1));
                moved = true;
            }
            None => {}
        }
        if !rgs.is_empty() {
            self.objects.insert(object, ObjectRgs::from_vec(rgs));
        }
        if moved {
            self.affinity.object_moved(&self.objects, object);
        }
    }

    /// A region of `rg` with these bytes and keys now counts for it (`add`), or no longer does.
    pub(super) fn add_size(&mut self, rg: RgId, bytes: u64, keys: u64, add: bool) {
        let t = self.rg_totals.entry(rg);
        if add {
            t.bytes = t.bytes.wrapping_add(bytes);
            t.keys = t.keys.wrapping_add(keys);
        } else {
            t.bytes = t.bytes.wrapping_sub(bytes);
            t.keys = t.keys.wrapping_sub(keys);
        }
        self.rg_totals.tidy(rg);
    }

    /// A region of `rg` (led by `leader`) now adds `load` to it, or no longer does.
    pub(super) fn add_load(
        &mut self,
        rg: RgId,
        leader: Option<StoreId>,
        load: &super::RegionLoad,
        add: bool,
    ) {
        if load.total() == 0 {
            return;
        }
        let t = self.rg_totals.entry(rg);
        if add {
            plus(&mut t.load, load);
        } else {
            t.load = less(t.load, load);
        }
        self.rg_totals.tidy(rg);
        if let Some(l) = leader {
            if add {
                plus(self.store_load.entry(l).or_default(), load);
            } else {
                minus(&mut self.store_load, l, load);
            }
        }
    }
}

fn plus(total: &mut super::RegionLoad, load: &super::RegionLoad) {
    total.read_bytes_per_sec = total
        .read_bytes_per_sec
        .wrapping_add(load.read_bytes_per_sec);
    total.write_bytes_per_sec = total
        .write_bytes_per_sec
        .wrapping_add(load.write_bytes_per_sec);
}

fn less(total: super::RegionLoad, load: &super::RegionLoad) -> super::RegionLoad {
    super::RegionLoad {
        read_bytes_per_sec: total
            .read_bytes_per_sec
            .wrapping_sub(load.read_bytes_per_sec),
        write_bytes_per_sec: total
            .write_bytes_per_sec
            .wrapping_sub(load.write_bytes_per_sec),
    }
}

/// Exact inverse of `plus` (wrapping both ways), dropping totals that reach zero.
fn minus(map: &mut HashMap<u64, super::RegionLoad>, key: u64, load: &super::RegionLoad) {
    if let Some(total) = map.get_mut(&key) {
        total.read_bytes_per_sec = total
            .read_bytes_per_sec
            .wrapping_sub(load.read_bytes_per_sec);
        total.write_bytes_per_sec = total
            .write_bytes_per_sec
            .wrapping_sub(load.write_bytes_per_sec);
        if total.read_bytes_per_sec == 0 && total.write_bytes_per_sec == 0 {
            map.remove(&key);
        }
    }
}

fn remove_from(map: &mut HashMap<StoreId, BTreeSet<RgId>>, key: StoreId, rg: RgId) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(&rg);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_log_answers_from_a_seq_or_says_it_no_longer_reaches() {
        let mut log = ChangeLog::default();
        assert_eq!(log.since(0), Some(BTreeSet::new()));
        log.record(3);
        log.record(3);
        log.record(1);
        let mid = log.seq();
        log.record(3);
        assert_eq!(log.since(0), Some([1, 3].into()));
        assert_eq!(log.since(mid), Some([3].into()));
        assert_eq!(log.since(log.seq()), Some(BTreeSet::new()));
        // The same RG changed again after a reader caught up: the reader still sees it (a
        // repair's second step was lost this way once).
        let caught_up = log.seq();
        log.record(3);
        assert_eq!(log.since(caught_up), Some([3].into()));
        for rg in 0..CHANGE_LOG_CAPACITY as u64 + 10 {
            log.record(100 + rg);
        }
        assert_eq!(log.since(0), None, "overrun");
        assert_eq!(log.since(log.seq()), Some(BTreeSet::new()));
        assert_eq!(log.since(log.seq() + 1), None, "ahead of the log");
    }
}

/// Ids below this sit in an id table's vector.
const DENSE_IDS: u64 = 1 << 24;

/// What an id table holds: records that know their id.
pub trait Keyed {
    fn key(&self) -> &u64;
}

impl Keyed for super::RgInfo {
    fn key(&self) -> &u64 {
        &self.id
    }
}

impl Keyed for super::RegionInfo {
    fn key(&self) -> &u64 {
        &self.id
    }
}

/// The view's RGs and regions. Their ids are allocated from 1 upwards, so they are kept in a
/// vector indexed by id: balancers and scoped checkers look them up one at a time, and a
/// lookup in an ordered map of a million large entries cost several cache misses. Ids beyond
/// the vector's reach (hand-made ones in tests) go to an ordered map. Reads see the records in
/// id order, as the map this replaces.
#[derive(Clone, Debug)]
pub struct IdTable<V> {
    /// Pages of PAGE slots, allocated as ids reach them: a vector grown by doubling would
    /// keep up to as much again in spare capacity (at a million regions, ~100 MB).
    pages: Vec<Option<Box<[Option<V>]>>>,
    sparse: BTreeMap<u64, V>,
    len: usize,
}

/// Slots per page of an id table.
const PAGE: usize = 1024;

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        Self {
            pages: Vec::new(),
            sparse: BTreeMap::new(),
            len: 0,
        }
    }
}

pub type RgTable = IdTable<super::RgInfo>;
pub type RegionTable = IdTable<super::RegionInfo>;

impl<V: Keyed + Clone> IdTable<V> {
    fn slot(&self, id: u64) -> Option<&Option<V>> {
        let i = id as usize;
        self.pages.get(i / PAGE)?.as_ref().map(|p| &p[i % PAGE])
    }

    pub fn get(&self, id: &u64) -> Option<&V> {
        if *id < DENSE_IDS {
            self.slot(*id)?.as_ref()
        } else {
            self.sparse.get(id)
        }
    }

    pub(super) fn get_mut(&mut self, id: &u64) -> Option<&mut V> {
        if *id < DENSE_IDS {
            let i = *id as usize;
            self.pages.get_mut(i / PAGE)?.as_mut()?[i % PAGE].as_mut()
        } else {
            self.sparse.get_mut(id)
        }
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn insert(&mut self, value: V) -> Option<V> {
        let id = *value.key();
        let old = if id < DENSE_IDS {
            let i = id as usize;
            if self.pages.len() <= i / PAGE {
                self.pages.resize_with(i / PAGE + 1, || None);
            }
            let page =
                self.pages[i / PAGE].get_or_insert_with(|| (0..PAGE).map(|_| None).collect());
            page[i % PAGE].replace(value)
        } else {
            self.sparse.insert(id, value)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, id: &u64) -> Option<V> {
        let old = if *id < DENSE_IDS {
            let i = *id as usize;
            self.pages.get_mut(i / PAGE)?.as_mut()?[i % PAGE].take()
        } else {
            self.sparse.remove(id)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// (id, record) in id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&u64, &V)> + '_ {
        self.pages
            .iter()
            .flatten()
            .flat_map(|p| p.iter())
            .filter_map(|r| r.as_ref().map(|r| (r.key(), r)))
            .chain(self.sparse.iter())
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.iter().map(|(_, r)| r)
    }

    /// (id, record) with id >= `from`, in id order: a page resumes where the last one ended
    /// instead of skipping over everything before it.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (&u64, &V)> + '_ {
        let first_page = (from.min(DENSE_IDS) as usize) / PAGE;
        self.pages
            .iter()
            .skip(first_page)
            .flatten()
            .flat_map(|p| p.iter())
            .filter_map(|r| r.as_ref().map(|r| (r.key(), r)))
            .filter(move |(id, _)| **id >= from)
            .chain(self.sparse.range(from..))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &u64> + '_ {
        self.iter().map(|(id, _)| id)
    }
}

impl<V: Keyed + Clone + PartialEq> PartialEq for IdTable<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<V: Keyed + Clone + Eq> Eq for IdTable<V> {}

impl<'a, V: Keyed + Clone> IntoIterator for &'a IdTable<V> {
    type Item = (&'a u64, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a u64, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// As a map's: panics when the id is absent (callers that know it is there).
impl<V: Keyed + Clone> std::ops::Index<&u64> for IdTable<V> {
    type Output = V;

    fn index(&self, id: &u64) -> &V {
        self.get(id).expect("id in the table")
    }
}
