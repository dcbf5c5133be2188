//! One test binary for the crate: each extra binary relinks RocksDB on a 2-core machine.

mod common;
mod engine_real_stores;
mod heartbeat_ingestion;
mod layers;
mod sim_agrees_with_real;
