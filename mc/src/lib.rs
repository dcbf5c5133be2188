//! The meta-controller (MC): a replicated catalog, the job engine that drives jobs of atomic
//! steps against store nodes, the live cluster view built from heartbeats, the schedulers that
//! propose jobs, and the gRPC API that DDL hooks, `mcctl` and stores call.
//!
//! The core (catalog, jobs, cluster, schedule) must never choose its own I/O: it reaches the
//! world only through the `StepExecutor`, `Clock` and catalog-store traits, so that the server,
//! the simulator and tests run the same job code. The MC must never act before it has
//! persisted what it is about to do.

pub mod api;
pub mod catalog;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod objects;
pub mod playground;
pub mod schedule;
pub mod server;
