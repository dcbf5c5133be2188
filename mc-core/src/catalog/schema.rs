//! The catalog's schema version and its migrations, run by each new MC leader before it reads
//! anything else. A catalog written by a newer MC is refused rather than misread.

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

const KEY: &[u8] = b"meta/schema_version";

/// The schema this build writes. 1: jobs, execution records, stores, RGs, logs, alerts; job
/// indexes (built for catalogs written before they existed).
pub const CURRENT: u32 = 1;

/// Brings the catalog to [`CURRENT`]; returns the version it found (0: none recorded).
pub async fn upgrade(catalog: &impl CatalogStore) -> Result<u32> {
    let found: u32 = match catalog.get(KEY)? {
        Some(v) => String::from_utf8_lossy(&v)
            .parse()
            .map_err(|_| McError::corrupt("the schema version", "not a number"))?,
        None => 0,
    };
    if found > CURRENT {
        return Err(McError::FailedPrecondition {
            subject: "catalog".into(),
            state: format!("schema {found}, written by a newer MC"),
            required: format!("schema {CURRENT} or older (upgrade this MC)"),
        });
    }
    let indexed = crate::jobs::index::ensure(catalog).await?;
    if indexed > 0 {
        tracing::info!(jobs = indexed, "indexed the jobs of an older catalog");
    }
    if found < CURRENT {
        let mut batch = WriteBatch::default();
        batch.put(KEY, CURRENT.to_string());
        catalog.write(batch).await?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;

    #[tokio::test]
    async fn a_new_catalog_is_stamped_and_a_newer_one_refused() {
        let store = MemoryStore::default();
        assert_eq!(upgrade(&store).await.unwrap(), 0);
        assert_eq!(upgrade(&store).await.unwrap(), CURRENT);
        let mut batch = WriteBatch::default();
        batch.put(KEY, (CURRENT + 1).to_string());
        store.write(batch).await.unwrap();
        let err = upgrade(&store).await.unwrap_err();
        assert!(err.to_string().contains("written by a newer MC"), "{err}");
    }
}
