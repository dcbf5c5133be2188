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
    /// The RG's shape in `view`, if the view knows it.
    pub fn of(view: &ClusterView, rg: RgId) -> Option<Self> {
        let info = view.rg(rg)?.clone();
        let regions = info
            .regions
            .iter()
            .filter_map(|id| view.region(*id))
            .map(|r| RegionInfo {
                size_bytes: 0,
                ..r.clone()
            })
            .collect();
        Some(Self {
            schema: SCHEMA_VERSION,
            rg: info,
            regions,
        })
    }
}

fn key(rg: RgId) -> Vec<u8> {
    format!("rg/{rg:016x}").into_bytes()
}

pub fn put(batch: &mut WriteBatch, record: &RgRecord) -> Result<()> {
    let value = serde_json::to_vec(record).map_err(|e| McError::Catalog(e.to_string()))?;
    batch.put(key(record.rg.id), value);
    Ok(())
}

pub fn delete(batch: &mut WriteBatch, rg: RgId) {
    batch.delete(key(rg));
}

pub fn load(catalog: &impl CatalogStore) -> Result<Vec<RgRecord>> {
    catalog
        .scan(b"rg/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| McError::Catalog(format!("{}: {e}", String::from_utf8_lossy(&k))))
        })
        .collect()
}
