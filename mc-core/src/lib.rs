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
pub mod ids;
pub mod jobs;
pub mod objects;
pub mod schedule;
pub mod step;
