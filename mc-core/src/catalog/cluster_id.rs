//! The cluster's id: made by the first MC leader of a new catalog, replicated with it, and
//! sent with every call to a store, which adopts it once and refuses any other after. A
//! wiped and re-created MC makes a new id, so the stores of the old cluster refuse it by name
//! instead of taking its steps.

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

const KEY: &[u8] = b"cluster/id";

pub fn get(catalog: &impl CatalogStore) -> Result<Option<u64>> {
    catalog
        .get(KEY)?
        .map(|v| {
            <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| McError::corrupt("cluster/id", format!("{} bytes, not 8", v.len())))
        })
        .transpose()
}

/// The id, made and committed first if the catalog has none.
pub async fn ensure(catalog: &impl CatalogStore) -> Result<u64> {
    if let Some(id) = get(catalog)? {
        return Ok(id);
    }
    let id = infra::names::new_cluster_id();
    let mut batch = WriteBatch::default();
    batch.put(KEY.to_vec(), id.to_be_bytes().to_vec());
    catalog.write(batch).await?;
    tracing::warn!(cluster_id = %format!("{id:016x}"), "made the cluster's id");
    Ok(id)
}
