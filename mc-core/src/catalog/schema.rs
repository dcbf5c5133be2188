//! The catalog's schema version and its migrations, run by each new MC leader before it reads
//! anything else. A catalog written by a newer MC is refused rather than misread.

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

const KEY: &[u8] = b"meta/schema_version";

/// The schema this build writes. 1: jobs, execution records, stores, RGs, logs, alerts; job
/// indexes (built for catalogs written before they existed).
pub const CURRENT: u32 = 1;

/// The version the catalog holds (0: none recorded). A catalog written by a newer MC is
/// refused rather than misread.
pub fn check(catalog: &impl CatalogStore) -> Result<u32> {
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
    Ok(found)
}

/// Records [`CURRENT`] once the migrations from `found` have run (see `crate::upgrade_catalog`).
pub async fn stamp(catalog: &impl CatalogStore, found: u32) -> Result<()> {
    if found < CURRENT {
        let mut batch = WriteBatch::default();
        batch.put(KEY, CURRENT.to_string());
        catalog.write(batch).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;

    async fn upgrade(store: &MemoryStore) -> Result<u32> {
        let found = check(store)?;
        stamp(store, found).await?;
        Ok(found)
    }

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
