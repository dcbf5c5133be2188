//! One test binary for the crate: each extra binary relinks RocksDB on a 2-core machine.

mod bulk_create;
mod cli_help;
mod common;
mod failover;
mod heartbeats;
mod hibernate;
mod lagging;
mod limits;
mod migration;
mod quorum_loss;
mod slow_follower;
mod snapshot_crash;
mod split_merge;
mod step_contract;
