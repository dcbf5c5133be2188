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
    let value = serde_json::to_vec(info).map_err(McError::internal)?;
    batch.put(store_key(info.id), value);
    Ok(())
}

pub fn get(catalog: &impl CatalogStore, id: StoreId) -> Result<Option<StoreInfo>> {
    catalog
        .get(&store_key(id))?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| McError::corrupt(format!("store {id}"), e))
        })
        .transpose()
}

pub fn load(catalog: &impl CatalogStore) -> Result<Vec<StoreInfo>> {
    catalog
        .scan(b"store/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
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
        serde_json::to_vec(overrides).map_err(McError::internal)?,
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
                .ok_or_else(|| McError::corrupt("a store-labels key", "no store id"))?;
            let labels = serde_json::from_slice(&v)
                .map_err(|e| McError::corrupt(format!("store {id} labels"), e))?;
            Ok((id, labels))
        })
        .collect()
}

/// Labels a store may carry.
pub const MAX_LABELS: usize = 32;
const MAX_LABEL_VALUE: usize = 128;
const MAX_ADDRESS: usize = 256;

/// Store labels are shown in terminals and consoles and matched by placement rules: keys are
/// 1-63 letters, digits or `._-/`, values at most 128 bytes of printable characters (no
/// escape sequences), at most 32 of them. The refusal names the label.
pub fn check_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    count: usize,
) -> Result<()> {
    if count > MAX_LABELS {
        return Err(McError::invalid(
            "labels",
            format!("{count} labels; a store has at most {MAX_LABELS}"),
        ));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if !key_ok {
            return Err(McError::invalid(
                format!(
                    "labels.{}",
                    crate::error::short(&k.escape_default().to_string())
                ),
                "a label key is 1-63 letters, digits or ._-/",
            ));
        }
        if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(McError::invalid(
                format!("labels.{k}"),
                format!("a label value is at most {MAX_LABEL_VALUE} bytes of printable characters"),
            ));
        }
    }
    Ok(())
}

/// A store's address: HOST:PORT, printable, at most 256 bytes.
pub fn check_address(address: &str) -> Result<()> {
    let printable = !address.is_empty()
        && address.len() <= MAX_ADDRESS
        && address.chars().all(|c| c.is_ascii_graphic());
    if !printable || (address.parse::<std::net::SocketAddr>().is_err() && !address.contains(':')) {
        return Err(McError::invalid(
            "address",
            format!(
                "`{}` is not HOST:PORT (printable, at most {MAX_ADDRESS} bytes)",
                crate::error::short(&address.escape_default().to_string())
            ),
        ));
    }
    Ok(())
}

/// Free text a store reports about itself (why it is unhealthy), made safe to store and print.
pub fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

fn maintenance_key(id: StoreId) -> Vec<u8> {
    format!("maint/{id:016x}").into_bytes()
}

/// Persists a store's maintenance window (`until_ms`), or its end (None).
pub async fn save_maintenance(
    catalog: &impl CatalogStore,
    id: StoreId,
    until_ms: Option<u64>,
) -> Result<()> {
    let mut batch = WriteBatch::default();
    match until_ms {
        Some(until) => batch.put(maintenance_key(id), until.to_string()),
        None => batch.delete(maintenance_key(id)),
    }
    catalog.write(batch).await
}

/// Every store's maintenance window: (store, until_ms).
pub fn load_maintenance(catalog: &impl CatalogStore) -> Result<Vec<(StoreId, u64)>> {
    catalog
        .scan(b"maint/")?
        .into_iter()
        .map(|(k, v)| {
            let key = String::from_utf8_lossy(&k);
            let id = key
                .strip_prefix("maint/")
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            let until = String::from_utf8_lossy(&v).parse::<u64>().ok();
            match (id, until) {
                (Some(id), Some(until)) => Ok((id, until)),
                _ => Err(McError::corrupt(key, "not a store id and a time")),
            }
        })
        .collect()
}
