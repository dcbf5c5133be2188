//! One test binary for the crate: each extra binary relinks RocksDB on a 2-core machine.

mod availability;
mod cli_help;
mod cluster_api;
mod common;
mod ddl;
mod ddl_failure;
mod ddl_path;
mod ddl_race;
mod ddl_split_race;
mod drain;
mod failover_view;
mod fault;
mod heartbeat_liveness;
mod hostile_store;
mod insider;
mod job_api;
mod mc_ha;
mod mc_kill9;
mod mcctl;
mod playground;
mod schedule;
mod security;
mod shape_writes;
mod unhealthy_store;
mod watch;
