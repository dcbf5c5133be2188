//! The MC server: the replicated catalog (openraft on RocksDB), the executor that sends steps to
//! stores over gRPC, the gRPC API that DDL hooks, `mcctl` and stores call, the leader's tasks,
//! and `mc playground`.
//!
//! The decisions themselves (catalog schema, cluster view, jobs, schedulers, DDL) are in
//! `mc-core`, which links neither tonic nor RocksDB; they are re-exported here under the same
//! paths, so `mc::cluster::…` and `mc_core::cluster::…` name the same items.

pub use mc_client as client;
pub use mc_core::{clock, cluster, error, history, ids, objects, schedule, step};

pub mod api;
pub mod catalog;
pub mod jobs;
pub mod playground;
pub mod server;
