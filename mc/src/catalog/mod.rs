//! The catalog of the MC server: the core's catalog (schema, users, tokens, logs, the in-memory
//! store) and its replicated store, openraft on RocksDB.

pub use mc_core::catalog::*;

pub mod raft;

#[cfg(test)]
mod conformance;
