//! A lock-free latency histogram with fixed buckets from 1 ms to 30 s: what
//! `farmgate_backend_response_duration_seconds` exports and where the status
//! page's average and p99 come from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket, +Inf, has
/// no bound).
pub const BOUNDS_US: [u64; 14] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// Counts per bucket (not cumulative) and the sum, all atomics.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A consistent-enough copy taken at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Per bucket, not cumulative; the last one is +Inf.
    pub buckets: [u64; BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

impl LatencyHistogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Mean in milliseconds, None before the first observation.
    pub fn mean_ms(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_us as f64 / 1000.0 / n as f64)
    }

    /// The `q` quantile in milliseconds, interpolated linearly inside its
    /// bucket the way Prometheus' `histogram_quantile` does. Observations
    /// past 30 s report 30 s.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * n as f64;
        let mut below = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&hi) = BOUNDS_US.get(i) else {
                    break; // +Inf bucket
                };
                let lo = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
                let into = (rank - below as f64) / c as f64;
                return Some((lo as f64 + (hi - lo) as f64 * into) / 1000.0);
            }
            below += c;
        }
        Some(BOUNDS_US[BOUNDS_US.len() - 1] as f64 / 1000.0)
    }

    /// `(upper bound in seconds, count)` pairs for the OpenMetrics encoder.
    /// What was observed after `earlier` (a reading of the same
    /// histogram); everything when there is no earlier reading.
    pub fn since(&self, earlier: Option<&HistogramSnapshot>) -> HistogramSnapshot {
        let Some(e) = earlier else {
            return self.clone();
        };
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(e.buckets[i])),
            sum_us: self.sum_us.saturating_sub(e.sum_us),
        }
    }

    /// Two histograms' observations together (several servers of a farm).
    pub fn plus(&self, other: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i] + other.buckets[i]),
            sum_us: self.sum_us + other.sum_us,
        }
    }

    pub fn encoder_buckets(&self) -> Vec<(f64, u64)> {
        BOUNDS_US
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn buckets_include_their_upper_bound() {
        let h = LatencyHistogram::default();
        for d in [ms(1), ms(2), ms(3), ms(40_000), Duration::from_micros(1)] {
            h.observe(d);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2, "1 µs and exactly 1 ms");
        assert_eq!(s.buckets[1], 1, "2 ms <= 2.5 ms");
        assert_eq!(s.buckets[2], 1, "3 ms <= 5 ms");
        assert_eq!(s.buckets[14], 1, "40 s is past the last bound");
        assert_eq!(s.count(), 5);
    }

    #[test]
    fn mean_and_quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.snapshot().mean_ms(), None);
        assert_eq!(h.snapshot().quantile_ms(0.99), None);
        // 99 fast requests in (5, 10] ms and one slow one in (1, 2.5] s.
        for _ in 0..99 {
            h.observe(ms(8));
        }
        h.observe(ms(2000));
        let s = h.snapshot();
        assert!((s.mean_ms().expect("mean") - (99.0 * 8.0 + 2000.0) / 100.0).abs() < 1e-9);
        let p50 = s.quantile_ms(0.5).expect("p50");
        assert!((5.0..=10.0).contains(&p50), "{p50}");
        let p99 = s.quantile_ms(0.99).expect("p99");
        assert!(
            (p99 - 10.0).abs() < 1e-9,
            "rank 99 ends the 10 ms bucket: {p99}"
        );
        let p100 = s.quantile_ms(1.0).expect("max");
        assert!((p100 - 2500.0).abs() < 1e-9, "{p100}");
    }

    #[test]
    fn overflow_reports_the_last_bound() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_secs(60));
        assert_eq!(h.snapshot().quantile_ms(0.99), Some(30_000.0));
    }

    #[test]
    fn encoder_buckets_end_with_inf() {
        let s = LatencyHistogram::default().snapshot();
        let b = s.encoder_buckets();
        assert_eq!(b.len(), 15);
        assert_eq!(b[0].0, 0.001);
        assert_eq!(b[13].0, 30.0);
        assert!(b[14].0.is_infinite());
    }
}
