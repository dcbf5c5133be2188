//! Store-wide routing index: region id → (RG, region), rebuilt from RocksDB at start and
//! updated by each RG's state machine after every applied change. The KV path reads it on every
//! request, so it is a plain map under a read-mostly lock. Regions are also indexed by RG: a
//! heartbeat of every RG a store leads must not look at every region once per RG.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::rg::types::RegionMeta;

#[derive(Debug, Default)]
pub struct RegionStats {
    pub read_bytes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub read_ops: AtomicU64,
    pub write_ops: AtomicU64,
    /// Writes this replica ever applied to the region: a region whose count has not moved
    /// since its size was measured keeps that measure (see `Measure`).
    pub writes_total: AtomicU64,
    measure: Mutex<Option<Measure>>,
}

/// A region's size, keys and split key as last measured, with what they were measured at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measure {
    pub size_bytes: u64,
    pub keys: u64,
    /// A key near the middle of the region's bytes, for regions large enough to split.
    pub split_key: Vec<u8>,
    pub writes_total: u64,
    pub at_ms: u64,
}

impl RegionStats {
    /// Counters since the last call, reset to zero (for interval heartbeats).
    pub fn take(&self) -> (u64, u64, u64, u64) {
        (
            self.read_bytes.swap(0, Ordering::Relaxed),
            self.write_bytes.swap(0, Ordering::Relaxed),
            self.read_ops.swap(0, Ordering::Relaxed),
            self.write_ops.swap(0, Ordering::Relaxed),
        )
    }

    /// The last measure, if no write came since and it is younger than `max_age_ms`.
    pub fn fresh_measure(&self, now_ms: u64, max_age_ms: u64) -> Option<Measure> {
        let m = self.measure.lock().expect("measure lock");
        m.as_ref()
            .filter(|m| {
                m.writes_total == self.writes_total.load(Ordering::Relaxed)
                    && now_ms.saturating_sub(m.at_ms) < max_age_ms
            })
            .cloned()
    }

    pub fn set_measure(&self, measure: Measure) {
        *self.measure.lock().expect("measure lock") = Some(measure);
    }

    fn forget_measure(&self) {
        *self.measure.lock().expect("measure lock") = None;
    }
}

#[derive(Debug, Clone)]
pub struct RegionEntry {
    pub rg_id: u64,
    pub region: RegionMeta,
    pub stats: std::sync::Arc<RegionStats>,
}

#[derive(Debug, Default)]
struct Maps {
    regions: HashMap<u64, RegionEntry>,
    by_rg: HashMap<u64, BTreeSet<u64>>,
}

impl Maps {
    fn unlink(&mut self, rg: u64, region: u64) {
        if let Some(set) = self.by_rg.get_mut(&rg) {
            set.remove(&region);
            if set.is_empty() {
                self.by_rg.remove(&rg);
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct RegionIndex {
    maps: RwLock<Maps>,
}

impl RegionIndex {
    pub fn get(&self, region_id: u64) -> Option<RegionEntry> {
        self.maps
            .read()
            .expect("region index lock")
            .regions
            .get(&region_id)
            .cloned()
    }

    pub fn upsert(&self, rg_id: u64, region: RegionMeta) {
        let mut maps = self.maps.write().expect("region index lock");
        let old = maps.regions.get(&region.id).cloned();
        let stats = match &old {
            Some(e) => {
                // A split or merge changed its range: its measure no longer holds.
                if e.region.start != region.start || e.region.end != region.end {
                    e.stats.forget_measure();
                }
                e.stats.clone()
            }
            None => Default::default(),
        };
        if let Some(old) = &old
            && old.rg_id != rg_id
        {
            maps.unlink(old.rg_id, region.id);
        }
        maps.by_rg.entry(rg_id).or_default().insert(region.id);
        maps.regions.insert(
            region.id,
            RegionEntry {
                rg_id,
                region,
                stats,
            },
        );
    }

    pub fn remove(&self, region_id: u64) {
        let mut maps = self.maps.write().expect("region index lock");
        if let Some(e) = maps.regions.remove(&region_id) {
            maps.unlink(e.rg_id, region_id);
        }
    }

    /// Removes every region of an RG (destroy, snapshot install) and returns them.
    pub fn remove_rg(&self, rg_id: u64) -> Vec<RegionMeta> {
        let mut maps = self.maps.write().expect("region index lock");
        let ids = maps.by_rg.remove(&rg_id).unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| maps.regions.remove(&id))
            .map(|e| e.region)
            .collect()
    }

    /// Every region held by an RG other than `rg_id`.
    pub fn of_other_rgs(&self, rg_id: u64) -> Vec<RegionMeta> {
        self.maps
            .read()
            .expect("region index lock")
            .regions
            .values()
            .filter(|e| e.rg_id != rg_id)
            .map(|e| e.region.clone())
            .collect()
    }

    /// The regions of one RG, by start key.
    pub fn of_rg(&self, rg_id: u64) -> Vec<RegionEntry> {
        let maps = self.maps.read().expect("region index lock");
        let mut out: Vec<_> = maps
            .by_rg
            .get(&rg_id)
            .into_iter()
            .flatten()
            .filter_map(|id| maps.regions.get(id).cloned())
            .collect();
        out.sort_by(|a, b| a.region.start.cmp(&b.region.start));
        out
    }

    /// One more write applied to the region (see `RegionStats::writes_total`).
    pub fn count_write(&self, region_id: u64) {
        if let Some(e) = self
            .maps
            .read()
            .expect("region index lock")
            .regions
            .get(&region_id)
        {
            e.stats.writes_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The region of this store holding `key`, if any.
    pub fn find_key(&self, key: &[u8]) -> Option<RegionEntry> {
        let maps = self.maps.read().expect("region index lock");
        maps.regions
            .values()
            .find(|e| e.region.contains(key))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8]) -> RegionMeta {
        RegionMeta {
            id,
            object_id: 1,
            start: start.to_vec(),
            end: end.to_vec(),
            version: 1,
        }
    }

    #[test]
    fn regions_are_found_by_rg_as_they_move_and_a_new_range_forgets_its_measure() {
        let index = RegionIndex::default();
        index.upsert(1, region(10, b"a", b"m"));
        index.upsert(1, region(11, b"m", b"z"));
        index.upsert(2, region(20, b"0", b"5"));
        let ids = |rg| -> Vec<u64> { index.of_rg(rg).iter().map(|e| e.region.id).collect() };
        assert_eq!(ids(1), vec![10, 11]);
        let stats = index.get(11).unwrap().stats;
        stats.set_measure(Measure {
            size_bytes: 5,
            keys: 1,
            split_key: vec![],
            writes_total: 0,
            at_ms: 0,
        });
        assert!(stats.fresh_measure(1, 100).is_some());
        stats.writes_total.fetch_add(1, Ordering::Relaxed);
        assert!(stats.fresh_measure(1, 100).is_none(), "a write since");
        stats.set_measure(Measure {
            size_bytes: 8,
            keys: 2,
            split_key: vec![],
            writes_total: 1,
            at_ms: 0,
        });
        // Region 11 moves to RG 2 (a SplitRg) with the same range: its measure stays.
        index.upsert(2, region(11, b"m", b"z"));
        assert_eq!((ids(1), ids(2)), (vec![10], vec![20, 11]));
        assert!(stats.fresh_measure(1, 100).is_some());
        // Its range shrinks (a split): the measure is dropped.
        index.upsert(2, region(11, b"m", b"t"));
        assert!(stats.fresh_measure(1, 100).is_none());
        index.remove(20);
        assert_eq!(ids(2), vec![11]);
        assert_eq!(index.remove_rg(2).len(), 1);
        assert!(ids(2).is_empty() && index.get(11).is_none());
    }
}
