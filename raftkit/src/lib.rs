//! openraft glue shared by the MC's catalog group and the stores' replication groups, so both
//! replicate the same way: one gRPC network over `RaftService` (control and data lanes,
//! entries cut to a byte budget, snapshots streamed in chunks at a bounded rate), one
//! group-commit WAL syncer, one rule for RPC deadlines and one wire codec.
//!
//! What differs between the two (the entry and snapshot types, where a snapshot lives) is said
//! by each side through [`network::GroupWire`].

pub mod log_store;
pub mod network;
pub mod rpc;
pub mod wal;
pub mod wire;
