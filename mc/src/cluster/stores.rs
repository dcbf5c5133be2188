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

fn labels_key(id: StoreId) -> Vec<u8> {
    format!("store-labels/{id:016x}").into_bytes()
}

/// Persists a store's SRE-set labels together with its record (labels applied).
pub async fn save_labels(
    catalog: &impl CatalogStore,
    info: &StoreInfo,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let mut batch = WriteBatch::default();
    put(&mut batch, info)?;
    batch.put(
        labels_key(info.id),
        serde_json::to_vec(overrides).map_err(|e| McError::Catalog(e.to_string()))?,
    );
    catalog.write(batch).await
}

/// Every store's SRE-set labels.
pub fn load_labels(
    catalog: &impl CatalogStore,
) -> Result<Vec<(StoreId, std::collections::BTreeMap<String, String>)>> {
    catalog
        .scan(b"store-labels/")?
        .into_iter()
        .map(|(k, v)| {
            let id = std::str::from_utf8(&k[b"store-labels/".len()..])
                .ok()
                .and_then(|h| StoreId::from_str_radix(h, 16).ok())
                .ok_or_else(|| McError::Catalog("bad store-labels key".into()))?;
            let labels = serde_json::from_slice(&v)
                .map_err(|e| McError::Catalog(format!("store {id} labels: {e}")))?;
            Ok((id, labels))
        })
        .collect()
}
