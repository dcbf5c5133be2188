//! The MC's core: the catalog's schema and the catalog-store trait, the cluster view built from
//! store reports, the job engine with its atomic steps, the schedulers, and DDL planning.
//!
//! It never chooses its own I/O: it reaches the world only through the `StepExecutor`, `Clock`
//! and `CatalogStore` traits, so that the server (`mc`), the simulator (`mcsim`) and tests run
//! the same code. Its dependencies hold it to that: no tonic, no RocksDB (CI checks
//! `cargo tree -p mc-core`). The MC never acts before it has persisted what it is about to do.

pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod error;
pub mod history;
pub mod ids;
pub mod job_spec;
pub mod jobs;
pub mod objects;
pub mod placement;
pub mod schedule;
pub mod step;
pub mod watchdog;

/// Brings the catalog to the schema this build writes, before a new leader reads anything
/// else: refuses a catalog of a newer MC, runs the migrations (the job indexes of catalogs
/// written before they existed), then records the version. Returns the version it found.
pub async fn upgrade_catalog(catalog: &impl catalog::CatalogStore) -> error::Result<u32> {
    let found = catalog::schema::check(catalog)?;
    let indexed = jobs::index::ensure(catalog).await?;
    if indexed > 0 {
        tracing::info!(jobs = indexed, "indexed the jobs of an older catalog");
    }
    catalog::schema::stamp(catalog, found).await?;
    Ok(found)
}
