//! The live-traffic failure window: failures over the last period, lock
//! free. Sixteen buckets, each one atomic word holding a bucket number and a
//! count, so a failure is one compare-and-swap and a sum of sixteen loads.
//! The window is exact to a sixteenth of the period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: u64 = 16;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// Failures over the last period, in sixteen buckets.
#[derive(Debug, Default)]
pub struct FailureWindow {
    buckets: [AtomicU64; BUCKETS as usize],
}

impl FailureWindow {
    /// Counts a failure at `now_ms`; returns the failures within the
    /// `period` that ends now.
    pub fn add(&self, now_ms: u64, period: Duration) -> u32 {
        let width = (period.as_millis() as u64 / BUCKETS).max(1);
        let epoch = now_ms / width;
        let slot = &self.buckets[(epoch % BUCKETS) as usize];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let next = if cur >> COUNT_BITS == epoch {
                (cur & !COUNT_MASK) | ((cur & COUNT_MASK) + 1).min(COUNT_MASK)
            } else {
                (epoch << COUNT_BITS) | 1
            };
            match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.count(epoch)
    }

    fn count(&self, epoch: u64) -> u32 {
        let total: u64 = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|v| {
                let e = v >> COUNT_BITS;
                e <= epoch && epoch - e < BUCKETS
            })
            .map(|v| v & COUNT_MASK)
            .sum();
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_period_only() {
        let w = FailureWindow::default();
        let period = Duration::from_millis(1600); // buckets of 100 ms
        assert_eq!(w.add(10_000, period), 1);
        assert_eq!(w.add(10_050, period), 2);
        assert_eq!(w.add(11_000, period), 3);
        // 1.5 s later the first two are still inside (bucket 100 of 115).
        assert_eq!(w.add(11_550, period), 4);
        // At 11_700 the bucket holding 10_000 and 10_050 has left the window.
        assert_eq!(w.add(11_700, period), 3);
        // Long after: only the new one.
        assert_eq!(w.add(60_000, period), 1);
        w.reset();
        assert_eq!(w.add(60_001, period), 1);
    }

    #[test]
    fn a_changed_period_does_not_count_stale_buckets() {
        let w = FailureWindow::default();
        for t in 0..5 {
            w.add(100_000 + t, Duration::from_secs(1));
        }
        // Wider buckets: epochs are smaller numbers now; old ones are ignored.
        assert_eq!(w.add(100_010, Duration::from_secs(30)), 1);
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let w = std::sync::Arc::new(FailureWindow::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        w.add(5_000, Duration::from_secs(30));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(w.add(5_000, Duration::from_secs(30)), 4001);
    }
}
