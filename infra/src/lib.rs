//! What every MC process shares and none of them owns: identities and TLS, failpoints,
//! the Prometheus text endpoint, gRPC health and reflection, hostile-input corpora, and
//! the RPC timing both Raft networks use. It holds no storage and no cluster logic, so a
//! client (`mcctl`) links it without RocksDB.
//!
//! Everything that speaks gRPC or TLS is behind the `net` feature (on by default); the MC's
//! core and the simulator take the rest (failpoints, metrics text, names) without tonic.

pub mod failpoint;
pub mod fuzz;
#[cfg(feature = "net")]
pub mod introspection;
pub mod names;
pub mod ports;
pub mod prometheus;
#[cfg(feature = "net")]
pub mod security;
