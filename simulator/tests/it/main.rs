//! One test binary for the crate: each extra binary relinks RocksDB on a 2-core machine.

mod cli_help;
mod scenarios;
