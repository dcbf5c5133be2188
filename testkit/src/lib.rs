//! What the tests and benchmarks of every crate share, and production code never links: child
//! processes that die with the test that started them (also when it panics), loopback ports
//! that outgoing connections do not take, and the row keys tests write.

mod proc;

pub use proc::{Killed, Proc, Stderr};

/// `127.0.0.1:PORT` on a port that is free now and that outgoing connections will not take.
pub fn free_addr() -> String {
    infra::ports::free_loopback_addr()
}

/// The `i`-th row key tests write: `k00000042`.
pub fn key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}
