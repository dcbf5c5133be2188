//! Time as the engine sees it. The server uses the system clock; tests and the simulator use a
//! manual clock that only moves when told to (or jumps to a deadline), so deadlines and
//! backoff are deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (or since the simulation's start).
    fn now_ms(&self) -> u64;

    /// Waits until `now_ms() >= at_ms`. A virtual clock jumps there at once.
    fn sleep_until(&self, at_ms: u64) -> impl std::future::Future<Output = ()> + Send;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    async fn sleep_until(&self, at_ms: u64) {
        let now = self.now_ms();
        if at_ms > now {
            tokio::time::sleep(std::time::Duration::from_millis(at_ms - now)).await;
        }
    }
}

/// A clock that only moves when told to.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    async fn sleep_until(&self, at_ms: u64) {
        self.0.fetch_max(at_ms, Ordering::SeqCst);
    }
}
