//! The store node: a passive process that holds replicas of replication groups (RGs) in one
//! RocksDB instance, replicates each RG with openraft, serves the KV data API, executes the
//! atomic steps the MC sends, and reports heartbeats.
//!
//! It never decides anything about a job: it knows no job progress, retries or rollback. It
//! runs one step per RG replica at a time, answers a repeated step with the stored outcome,
//! and refuses steps from a deposed MC leader.

pub use infra::{failpoint, introspection, prometheus, security};

pub mod access;
pub mod client;
pub mod codec;
pub mod config;
pub mod engine;
pub mod error;
/// Fuzz targets: built for the tests and for `cargo fuzz` (which sets `cfg(fuzzing)`), never
/// into the store.
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod handover;
pub mod heartbeat;
pub mod hibernate;
pub mod kv;
pub mod metrics;
pub mod rg;
pub mod server;
pub mod steps;
pub mod store;
pub mod traffic;
pub mod transport;
