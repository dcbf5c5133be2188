//! The RG and region tables of the catalog: each RG's members, leader and regions (ranges,
//! objects, versions). Written when that shape changes — by an RG heartbeat that changed it,
//! by every step outcome (the store that ran a step describes the RG), and by every job that
//! succeeded (its effect) — not on every heartbeat (sizes and loads stay in memory). A new MC
//! leader starts from them, each RG marked not heard from in its term until its leader
//! reports, so nothing is blind in between: Tombstone refuses a store that holds replicas, a
//! recovered drain sees the RGs it must move, and membership changes of unheard RGs wait.

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogStore, WriteBatch};
use crate::cluster::{ClusterView, RegionInfo, RgInfo};
use crate::error::{McError, Result};
use crate::ids::RgId;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgRecord {
    pub schema: u32,
    pub rg: RgInfo,
    /// Sizes are zero: they are not part of the shape.
    pub regions: Vec<RegionInfo>,
}

impl RgRecord {
    /// The RG's shape in `view`, if the view knows it: what a new leader must start from,
    /// without what changes with every heartbeat (sizes, key counts, the applied index, whether
    /// this term heard it), so an RG that only took writes is not written again.
    pub fn of(view: &ClusterView, rg: RgId) -> Option<Self> {
        let mut info = view.rg(rg)?.clone();
        info.applied_index = 0;
        info.heard = false;
        let regions = info
            .regions
            .iter()
            .filter_map(|id| view.region(*id))
            .map(|r| RegionInfo {
                size_bytes: 0,
                keys: 0,
                ..r.clone()
            })
            .collect();
        Some(Self {
            schema: SCHEMA_VERSION,
            rg: info,
            regions,
        })
    }

    /// A hash of the shape: the live cluster keeps it per RG for what the catalog holds, so a
    /// heartbeat is written only when it changed the shape.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let rg = &self.rg;
        (rg.id, rg.leader, rg.offline, rg.term, rg.conf_ver).hash(&mut h);
        for (store, role) in rg.members.iter() {
            (*store, *role as u8).hash(&mut h);
        }
        rg.regions.as_slice().hash(&mut h);
        for r in &self.regions {
            (
                r.id,
                r.rg,
                r.object,
                r.start.as_slice(),
                r.end.as_slice(),
                r.version,
            )
                .hash(&mut h);
        }
        h.finish()
    }
}

fn key(rg: RgId) -> Vec<u8> {
    format!("rg/{rg:016x}").into_bytes()
}

pub fn put(batch: &mut WriteBatch, record: &RgRecord) -> Result<()> {
    let value = serde_json::to_vec(record).map_err(McError::internal)?;
    batch.put(key(record.rg.id), value);
    Ok(())
}

/// Deletes the RG's shape and leaves a tombstone: what a store still holds of a retired RG
/// (merged away or deleted while the store was behind) is a stray to destroy, while an RG
/// id the catalog never had a shape for may be one a failed split or create left in doubt.
pub fn delete(batch: &mut WriteBatch, rg: RgId) {
    batch.delete(key(rg));
    batch.put(retired_key(rg), Vec::new());
}

fn retired_key(rg: RgId) -> Vec<u8> {
    format!("rg-retired/{rg:016x}").into_bytes()
}

/// The RGs deleted or merged away.
pub fn load_retired(catalog: &impl CatalogStore) -> Result<Vec<RgId>> {
    catalog
        .scan(b"rg-retired/")?
        .into_iter()
        .map(|(k, _)| {
            std::str::from_utf8(&k[b"rg-retired/".len()..])
                .ok()
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .ok_or_else(|| McError::corrupt(String::from_utf8_lossy(&k), "no RG id in the key"))
        })
        .collect()
}

pub fn load(catalog: &impl CatalogStore) -> Result<Vec<RgRecord>> {
    catalog
        .scan(b"rg/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
        })
        .collect()
}
