//! The stores table of the catalog: what a new MC leader must know before the first
//! heartbeat reaches it — each store's id (ids are allocated once, by whichever MC led then),
//! address, labels and operator-set state.

use crate::catalog::{CatalogStore, WriteBatch};
use crate::cluster::StoreInfo;
use crate::error::{McError, Result};
use crate::ids::StoreId;

pub fn store_key(id: StoreId) -> Vec<u8> {
    format!("store/{id:016x}").into_bytes()
}

pub fn put(batch: &mut WriteBatch, info: &StoreInfo) -> Result<()> {
    let value = serde_json::to_vec(info).map_err(|e| McError::Catalog(e.to_string()))?;
    batch.put(store_key(info.id), value);
    Ok(())
}

pub fn get(catalog: &impl CatalogStore, id: StoreId) -> Result<Option<StoreInfo>> {
    catalog
        .get(&store_key(id))?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| McError::Catalog(format!("store {id}: {e}")))
        })
        .transpose()
}

pub fn load(catalog: &impl CatalogStore) -> Result<Vec<StoreInfo>> {
    catalog
        .scan(b"store/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| McError::Catalog(format!("{}: {e}", String::from_utf8_lossy(&k))))
        })
        .collect()
}

/// Persists `info` unless the catalog already holds exactly it (heartbeat sessions re-register
/// often; the catalog should only see changes).
pub async fn save_if_changed(catalog: &impl CatalogStore, info: &StoreInfo) -> Result<()> {
    if get(catalog, info.id)?.as_ref() == Some(info) {
        return Ok(());
    }
    let mut batch = WriteBatch::default();
    put(&mut batch, info)?;
    catalog.write(batch).await
}
