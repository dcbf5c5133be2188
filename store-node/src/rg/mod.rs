//! One replication group replica: its Raft log, state machine, snapshots and seeding.

pub mod log_store;
pub mod region_index;
pub mod seed;
pub mod snapshot;
pub mod state_machine;
pub mod types;
