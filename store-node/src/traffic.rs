//! A store's client traffic, counted as it is served. The store heartbeat reports it as rates
//! over the interval since the previous report (the MC's hot-store view reads them).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Default)]
pub struct Traffic {
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    read_ops: AtomicU64,
    write_ops: AtomicU64,
    /// When `rates` was last called, and the totals then.
    last: Mutex<Option<(Instant, [u64; 4])>>,
}

/// Per second, over the interval since the previous call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

impl Traffic {
    pub fn read(&self, bytes: u64) {
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.read_ops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn write(&self, bytes: u64) {
        self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.write_ops.fetch_add(1, Ordering::Relaxed);
    }

    fn totals(&self) -> [u64; 4] {
        [
            self.read_bytes.load(Ordering::Relaxed),
            self.write_bytes.load(Ordering::Relaxed),
            self.read_ops.load(Ordering::Relaxed),
            self.write_ops.load(Ordering::Relaxed),
        ]
    }

    /// Rates since the previous call (zero at the first).
    pub fn rates(&self) -> Rates {
        let now = Instant::now();
        let totals = self.totals();
        let mut last = self.last.lock().expect("traffic lock");
        let rates = match *last {
            Some((then, before)) => {
                let ms = now.duration_since(then).as_millis().max(1) as u64;
                let per_sec =
                    |i: usize| totals[i].saturating_sub(before[i]).saturating_mul(1000) / ms;
                Rates {
                    read_bytes: per_sec(0),
                    write_bytes: per_sec(1),
                    read_ops: per_sec(2),
                    write_ops: per_sec(3),
                }
            }
            None => Rates::default(),
        };
        *last = Some((now, totals));
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_since_the_last_report() {
        let t = Traffic::default();
        assert_eq!(t.rates(), Rates::default());
        for _ in 0..10 {
            t.write(1_000);
        }
        t.read(500);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let r = t.rates();
        // 10,000 bytes in about 0.1 s: about 100,000 B/s (sleep overshoots, never undershoots).
        assert!((50_000..=100_000).contains(&r.write_bytes), "{r:?}");
        assert!(r.write_ops >= 50 && r.write_ops <= 100, "{r:?}");
        assert!(r.read_bytes > 0 && r.read_ops > 0, "{r:?}");
        assert_eq!(t.rates().write_ops, 0, "nothing since");
    }
}
