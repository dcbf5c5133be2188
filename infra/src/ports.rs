//! Loopback ports for processes that a test, a bench or the playground starts and restarts.
//!
//! Asking the kernel for port 0 and handing the number to a child process races: until the
//! child binds it, the port is free, and the kernel gives ports from its ephemeral range to
//! every outgoing connection's automatic bind. A busy test run makes many connections, so a
//! store restarted on "its" port now and then found it taken (CI failed on exactly that).
//! Ports handed out here come from below the ephemeral range, which outgoing connections never
//! use; a process-wide counter never hands one out twice, processes start at different
//! offsets, and each port is checked free by binding it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out; below it live well-known services.
const LOW: u32 = 10_000;

/// `127.0.0.1:PORT` with a port that is free now and that outgoing connections will not take.
pub fn free_loopback_addr() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_low().unwrap_or(32_768);
    if high <= LOW + 1_000 {
        return kernel_port();
    }
    let span = high - LOW;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + n) % span;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
    kernel_port()
}

/// The first port of the kernel's ephemeral range, where it says.
fn ephemeral_low() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The fallback when no range below the ephemeral one is usable.
fn kernel_port() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "127.0.0.1:0".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let low = ephemeral_low().unwrap_or(32_768);
        let addrs: Vec<String> = (0..50).map(|_| free_loopback_addr()).collect();
        let mut unique = addrs.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), addrs.len());
        for a in &addrs {
            let port: u32 = a.rsplit(':').next().unwrap().parse().unwrap();
            assert!((LOW..low).contains(&port), "{a} not in {LOW}..{low}");
        }
    }
}
