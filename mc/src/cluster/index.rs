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

use crate::ids::{ObjectId, RgId, StoreId};

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
}

impl ChangeLog {
    fn record(&mut self, rg: RgId) {
        // A heartbeat touching one RG twice in a row logs it once.
        if self.log.back().is_some_and(|(_, last)| *last == rg) {
            return;
        }
        if self.log.len() == CHANGE_LOG_CAPACITY {
            self.log.pop_front();
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
        let oldest = self.log.front().map(|(s, _)| *s).unwrap_or(self.next);
        // Too far behind, or from another view's numbering (ahead of this one).
        if (seq < oldest && seq != self.next) || seq > self.next {
            return None;
        }
        let skip = (seq - oldest.min(seq)) as usize;
        Some(self.log.iter().skip(skip).map(|(_, rg)| *rg).collect())
    }
}

#[derive(Clone, Debug, Default)]
pub struct ViewIndex {
    /// RGs with a replica on each store.
    pub(super) replicas: HashMap<StoreId, BTreeSet<RgId>>,
    /// RGs each store leads.
    pub(super) leaders: HashMap<StoreId, BTreeSet<RgId>>,
    /// Each data object's regions, counted by RG: an affinity group spread over RGs shows
    /// without looking at its regions, and a subtree of objects is a range.
    pub(super) objects: BTreeMap<ObjectId, Vec<(RgId, u32)>>,
    /// RGs restored from the catalog and not heard from in this term.
    pub(super) unheard: BTreeSet<RgId>,
    /// Bytes and traffic of each RG's regions, summed (kept for RG ids whose regions are
    /// known even before the RG itself is).
    pub(super) rg_bytes: HashMap<RgId, u64>,
    pub(super) rg_load: HashMap<RgId, super::RegionLoad>,
    /// Traffic each store serves, as the leader of its RGs.
    pub(super) store_load: HashMap<StoreId, super::RegionLoad>,
    pub(super) changes: ChangeLog,
}

impl ViewIndex {
    pub(super) fn add_rg(&mut self, rg: &super::RgInfo) {
        for s in rg.members.keys() {
            self.replicas.entry(*s).or_default().insert(rg.id);
        }
        if let Some(l) = rg.leader {
            self.leaders.entry(l).or_default().insert(rg.id);
            if let Some(load) = self.rg_load.get(&rg.id).copied() {
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
            if let Some(load) = self.rg_load.get(&rg.id).copied() {
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
        let rgs = self.objects.entry(object).or_default();
        match rgs.iter().position(|(r, _)| *r == rg) {
            Some(i) if add => rgs[i].1 += 1,
            Some(i) => {
                rgs[i].1 -= 1;
                if rgs[i].1 == 0 {
                    rgs.swap_remove(i);
                }
            }
            None if add => rgs.push((rg, 1)),
            None => {}
        }
        if rgs.is_empty() {
            self.objects.remove(&object);
        }
    }

    pub(super) fn add_bytes(&mut self, rg: RgId, bytes: u64, add: bool) {
        let total = self.rg_bytes.entry(rg).or_default();
        *total = if add {
            total.wrapping_add(bytes)
        } else {
            total.wrapping_sub(bytes)
        };
        if *total == 0 {
            self.rg_bytes.remove(&rg);
        }
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
        if add {
            plus(self.rg_load.entry(rg).or_default(), load);
            if let Some(l) = leader {
                plus(self.store_load.entry(l).or_default(), load);
            }
        } else {
            minus(&mut self.rg_load, rg, load);
            if let Some(l) = leader {
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
        for rg in 0..CHANGE_LOG_CAPACITY as u64 + 10 {
            log.record(100 + rg);
        }
        assert_eq!(log.since(0), None, "overrun");
        assert_eq!(log.since(log.seq()), Some(BTreeSet::new()));
        assert_eq!(log.since(log.seq() + 1), None, "ahead of the log");
    }
}
