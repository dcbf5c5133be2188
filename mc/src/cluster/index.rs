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
        if seq < oldest && seq != self.next {
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
    /// (object, region) for every region: an object's regions, and a subtree's, are a range.
    pub(super) objects: BTreeSet<(ObjectId, RegionId)>,
    /// RGs restored from the catalog and not heard from in this term.
    pub(super) unheard: BTreeSet<RgId>,
    pub(super) changes: ChangeLog,
}

impl ViewIndex {
    pub(super) fn add_rg(&mut self, rg: &super::RgInfo) {
        for s in rg.members.keys() {
            self.replicas.entry(*s).or_default().insert(rg.id);
        }
        if let Some(l) = rg.leader {
            self.leaders.entry(l).or_default().insert(rg.id);
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
        }
        self.unheard.remove(&rg.id);
    }

    pub(super) fn record(&mut self, rg: RgId) {
        self.changes.record(rg);
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
    }
}
