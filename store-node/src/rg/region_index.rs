//! Store-wide routing index: region id → (RG, region), rebuilt from RocksDB at start and
//! updated by each RG's state machine after every applied change. The KV path reads it on every
//! request, so it is a plain map under a read-mostly lock.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::rg::types::RegionMeta;

#[derive(Debug, Default)]
pub struct RegionStats {
    pub read_bytes: AtomicU64,
    pub write_bytes: AtomicU64,
    pub read_ops: AtomicU64,
    pub write_ops: AtomicU64,
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
}

#[derive(Debug, Clone)]
pub struct RegionEntry {
    pub rg_id: u64,
    pub region: RegionMeta,
    pub stats: std::sync::Arc<RegionStats>,
}

#[derive(Debug, Default)]
pub struct RegionIndex {
    regions: RwLock<HashMap<u64, RegionEntry>>,
}

impl RegionIndex {
    pub fn get(&self, region_id: u64) -> Option<RegionEntry> {
        self.regions
            .read()
            .expect("region index lock")
            .get(&region_id)
            .cloned()
    }

    pub fn upsert(&self, rg_id: u64, region: RegionMeta) {
        let mut map = self.regions.write().expect("region index lock");
        let stats = map
            .get(&region.id)
            .map(|e| e.stats.clone())
            .unwrap_or_default();
        map.insert(
            region.id,
            RegionEntry {
                rg_id,
                region,
                stats,
            },
        );
    }

    pub fn remove(&self, region_id: u64) {
        self.regions
            .write()
            .expect("region index lock")
            .remove(&region_id);
    }

    /// Removes every region of an RG (destroy, snapshot install) and returns them.
    pub fn remove_rg(&self, rg_id: u64) -> Vec<RegionMeta> {
        let mut map = self.regions.write().expect("region index lock");
        let ids: Vec<u64> = map
            .iter()
            .filter(|(_, e)| e.rg_id == rg_id)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| map.remove(&id))
            .map(|e| e.region)
            .collect()
    }

    /// Every region held by an RG other than `rg_id`.
    pub fn of_other_rgs(&self, rg_id: u64) -> Vec<RegionMeta> {
        self.regions
            .read()
            .expect("region index lock")
            .values()
            .filter(|e| e.rg_id != rg_id)
            .map(|e| e.region.clone())
            .collect()
    }

    pub fn of_rg(&self, rg_id: u64) -> Vec<RegionEntry> {
        let map = self.regions.read().expect("region index lock");
        let mut out: Vec<_> = map.values().filter(|e| e.rg_id == rg_id).cloned().collect();
        out.sort_by(|a, b| a.region.start.cmp(&b.region.start));
        out
    }

    /// The region of this store holding `key`, if any.
    pub fn find_key(&self, key: &[u8]) -> Option<RegionEntry> {
        let map = self.regions.read().expect("region index lock");
        map.values().find(|e| e.region.contains(key)).cloned()
    }
}
