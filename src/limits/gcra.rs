//! The generic cell rate algorithm (GCRA): a token bucket expressed as one
//! timestamp per key, the theoretical arrival time (TAT) of the next
//! request if the client sent exactly at `rate`. A request at `now` is
//! allowed when the TAT is at most `burst` intervals ahead of `now`; it
//! then moves the TAT one interval on. A key whose TAT is in the past holds
//! a full bucket and needs no state at all.

use std::time::Duration;

/// A rate: `per` one request each `interval`, with `burst` requests
/// allowed at once on top of the steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Nanoseconds between two requests at the steady rate.
    interval_ns: u64,
    /// How far ahead of now the TAT may run (burst x interval), in ns.
    tolerance_ns: u64,
    /// Requests a full bucket allows at once.
    burst: u32,
}

impl Rate {
    /// `count` requests per `period`, `burst` of them at once (at least 1).
    pub fn new(count: u32, period: Duration, burst: u32) -> Option<Rate> {
        if count == 0 || period.is_zero() {
            return None;
        }
        let interval_ns = u64::try_from(period.as_nanos() / u128::from(count))
            .ok()?
            .max(1);
        let burst = burst.max(1);
        Some(Rate {
            interval_ns,
            tolerance_ns: interval_ns.checked_mul(u64::from(burst - 1))?,
            burst,
        })
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Nanoseconds between two requests at the steady rate.
    #[inline]
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// This rate shared by `n` instances: each allows `1/n` of the rate and
    /// of the burst (at least 1). Arithmetic only, for the request path.
    #[inline]
    pub fn shared_by(&self, n: u32) -> Rate {
        let n = u64::from(n.max(1));
        let interval_ns = self.interval_ns.saturating_mul(n);
        let burst = (self.burst / n as u32).max(1);
        Rate {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(burst - 1)),
            burst,
        }
    }

    /// The decision for a request at `now_ns` with the key's TAT `tat_ns`
    /// (0: never seen); the new TAT to store when allowed.
    #[inline]
    pub fn check(&self, tat_ns: u64, now_ns: u64) -> Decision {
        let tat = tat_ns.max(now_ns);
        let ahead = tat - now_ns;
        if ahead > self.tolerance_ns {
            // The earliest moment this request would have fitted.
            let wait = ahead - self.tolerance_ns;
            return Decision::Limited {
                retry_after: Duration::from_nanos(wait),
            };
        }
        let new_tat = tat + self.interval_ns;
        // Requests left in the bucket after this one.
        let used = (new_tat - now_ns).div_ceil(self.interval_ns);
        let remaining = u64::from(self.burst).saturating_sub(used);
        Decision::Allowed {
            new_tat,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        }
    }

    /// When a key's bucket is full again (its state may be forgotten).
    #[inline]
    pub fn is_full(&self, tat_ns: u64, now_ns: u64) -> bool {
        tat_ns <= now_ns
    }
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        new_tat: u64,
        /// Requests the key may still send at once.
        remaining: u32,
    },
    Limited {
        /// How long until one request would be allowed.
        retry_after: Duration,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Feeds requests at the given times (ns); the allowed ones.
    fn run(rate: Rate, times: &[u64]) -> Vec<bool> {
        let mut tat = 0;
        times
            .iter()
            .map(|&t| match rate.check(tat, t) {
                Decision::Allowed { new_tat, .. } => {
                    tat = new_tat;
                    true
                }
                Decision::Limited { .. } => false,
            })
            .collect()
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        // 10/s, burst 5: five at once, the sixth waits 100 ms.
        let r = Rate::new(10, Duration::from_secs(1), 5).expect("rate");
        let at_once = run(r, &[SEC; 7]);
        assert_eq!(at_once, [true, true, true, true, true, false, false]);
        let mut tat = 0;
        for _ in 0..5 {
            if let Decision::Allowed { new_tat, .. } = r.check(tat, SEC) {
                tat = new_tat;
            }
        }
        match r.check(tat, SEC) {
            Decision::Limited { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(100))
            }
            d => panic!("{d:?}"),
        }
        // 100 ms later one more fits, not two.
        assert!(r.check(tat, SEC + SEC / 10).is_allowed());
        // A request every 100 ms is always allowed.
        let steady: Vec<u64> = (0..50).map(|i| SEC + i * SEC / 10).collect();
        assert!(run(r, &steady).iter().all(|&a| a));
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        // 100/min with burst 20, hammered every 10 ms for a minute.
        let r = Rate::new(100, Duration::from_secs(60), 20).expect("rate");
        let times: Vec<u64> = (0..6000).map(|i| SEC + i * SEC / 100).collect();
        let allowed = run(r, &times).iter().filter(|&&a| a).count();
        assert!(
            (119..=121).contains(&allowed),
            "20 at once + 100 over the minute: {allowed}"
        );
    }

    #[test]
    fn remaining_counts_down_and_full_buckets_need_no_state() {
        let r = Rate::new(5, Duration::from_secs(1), 3).expect("rate");
        let mut tat = 0;
        let mut left = Vec::new();
        for _ in 0..3 {
            if let Decision::Allowed { new_tat, remaining } = r.check(tat, SEC) {
                tat = new_tat;
                left.push(remaining);
            }
        }
        assert_eq!(left, [2, 1, 0]);
        assert!(!r.is_full(tat, SEC));
        assert!(r.is_full(tat, SEC + SEC));
        assert!(Rate::new(0, Duration::from_secs(1), 1).is_none());
    }

    #[test]
    fn a_rate_shared_by_three_allows_a_third() {
        let r = Rate::new(30, Duration::from_secs(3), 9).expect("rate");
        let third = r.shared_by(3);
        assert_eq!(
            third,
            Rate::new(10, Duration::from_secs(3), 3).expect("rate")
        );
        assert_eq!(r.shared_by(1), r);
        assert_eq!(r.shared_by(0), r);
        // The burst never drops below one request.
        assert_eq!(r.shared_by(20).burst(), 1);
    }
}
