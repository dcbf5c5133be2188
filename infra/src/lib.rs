//! What every MC process shares and none of them owns: identities and TLS, failpoints,
//! the Prometheus text endpoint, gRPC health and reflection, hostile-input corpora, and
//! the RPC timing both Raft networks use. It holds no storage and no cluster logic, so a
//! client (`mcctl`) links it without RocksDB.

pub mod failpoint;
pub mod fuzz;
pub mod introspection;
pub mod ports;
pub mod prometheus;
pub mod raft_rpc;
pub mod security;
