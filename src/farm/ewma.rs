//! Peak-EWMA of a server's response latency, the signal behind
//! `least_response_time`. It lives in [`super::ServerState`], so it survives
//! reloads, and is fed by `ServerState::record_attempt`.
//!
//! "Peak": a response slower than the estimate replaces it at once (a server
//! that turns slow loses traffic on its first slow answer); a faster one is
//! blended in with a weight that depends on the time since the previous
//! observation, so the average forgets with time constant [`DECAY`] however
//! many requests arrive. Readers also decay the estimate toward zero by the
//! time since the last observation: a server that lost its traffic because it
//! was slow becomes attractive again and is re-measured.
//!
//! Two atomics, no lock: the estimate (f64 bits, CAS-updated) and the time
//! of the last observation. Each observation *swaps* the timestamp, so
//! concurrent observations each own a disjoint slice of elapsed time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Time constant of the average: the weight of an observation falls to 1/e
/// after this long. Short enough that a recovered server wins traffic back
/// within seconds, long enough to ride out one slow response's noise.
pub const DECAY: Duration = Duration::from_secs(2);

const DECAY_NS: f64 = DECAY.as_nanos() as f64;

/// `e^(-t / DECAY)` for `t` in nanoseconds, to about 1e-5: a pick reads
/// this for every server, and libm's `exp` dominated a 1000-server scan.
/// `e^-x = 2^-y` with `y = x log2 e`; `2^-int(y)` is built in the exponent
/// bits, `2^-frac(y)` is a short Taylor series.
#[inline]
pub fn decay(t_ns: f64) -> f64 {
    let y = t_ns * (std::f64::consts::LOG2_E / DECAY_NS);
    if y.is_nan() || y >= 1000.0 {
        return 0.0;
    }
    let y = y.max(0.0);
    let whole = y as u64; // y >= 0: truncation is floor
    let u = (y - whole as f64) * std::f64::consts::LN_2; // in [0, ln 2)
                                                         // e^-u, Taylor to u^6, Horner with constant coefficients (multiplies
                                                         // only: `u / 3.0` would be a real division on the critical path).
    const C: [f64; 7] = [
        1.0,
        -1.0,
        1.0 / 2.0,
        -1.0 / 6.0,
        1.0 / 24.0,
        -1.0 / 120.0,
        1.0 / 720.0,
    ];
    let frac = C.iter().rev().fold(0.0, |acc, &c| acc * u + c);
    frac * f64::from_bits((1023 - whole) << 52)
}

/// Nanoseconds since a process-wide epoch, never 0 (0 means "never").
#[inline]
pub fn now_ns() -> u64 {
    ns_at(Instant::now())
}

/// [`now_ns`] of an instant already read (one clock read serves a request's
/// accounting).
#[inline]
pub fn ns_at(t: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    t.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
        .as_nanos() as u64
        + 1
}

/// The decaying latency estimate of one server.
#[derive(Debug, Default)]
pub struct PeakEwma {
    /// Estimate in nanoseconds, as `f64::to_bits`.
    estimate: AtomicU64,
    /// `now_ns()` of the last observation; 0 before the first.
    stamp: AtomicU64,
}

impl PeakEwma {
    /// Feeds one observed latency.
    pub fn observe(&self, latency: Duration) {
        self.observe_at(latency, now_ns());
    }

    pub(crate) fn observe_at(&self, latency: Duration, now: u64) {
        let rtt = (latency.as_nanos() as f64).max(1.0);
        let prev = self.stamp.swap(now, Ordering::AcqRel);
        let elapsed = now.saturating_sub(prev) as f64;
        let _ = self
            .estimate
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let old = f64::from_bits(bits);
                let new = if prev == 0 || old <= 0.0 || rtt > old {
                    rtt
                } else {
                    let w = decay(elapsed);
                    old * w + rtt * (1.0 - w)
                };
                Some(new.to_bits())
            });
    }

    /// The estimate in nanoseconds as of `now`, decayed toward zero by the
    /// time since the last observation, and whether the server has been
    /// observed within the last [`DECAY`]. None when never observed.
    #[inline]
    pub fn read_at(&self, now: u64) -> Option<(f64, bool)> {
        let stamp = self.stamp.load(Ordering::Acquire);
        let est = f64::from_bits(self.estimate.load(Ordering::Acquire));
        if stamp == 0 || est <= 0.0 {
            return None;
        }
        let idle = now.saturating_sub(stamp) as f64;
        Some((est * decay(idle), idle < DECAY_NS))
    }

    /// Like [`Self::read_at`] but only for a server observed within the
    /// last [`DECAY`] (no decay computed for the others).
    #[inline]
    pub fn read_fresh_at(&self, now: u64) -> Option<f64> {
        let stamp = self.stamp.load(Ordering::Acquire);
        let idle = now.saturating_sub(stamp) as f64;
        if stamp == 0 || idle >= DECAY_NS {
            return None;
        }
        let est = f64::from_bits(self.estimate.load(Ordering::Acquire));
        (est > 0.0).then(|| est * decay(idle))
    }

    /// The current estimate, for status pages.
    pub fn current(&self) -> Option<Duration> {
        self.read_at(now_ns())
            .map(|(ns, _)| Duration::from_nanos(ns as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn fast_decay_matches_exp() {
        for i in 0..2000 {
            let t = f64::from(i) * 0.01 * DECAY_NS;
            let want = (-t / DECAY_NS).exp();
            let got = decay(t);
            assert!(
                (got - want).abs() <= 2e-4 * want.max(1e-300),
                "t={t}: {got} vs {want}"
            );
        }
        assert_eq!(decay(f64::INFINITY), 0.0);
        assert_eq!(decay(f64::NAN), 0.0);
        assert_eq!(decay(0.0), 1.0);
    }

    #[test]
    fn first_observation_is_the_estimate() {
        let e = PeakEwma::default();
        assert!(e.read_at(10).is_none());
        e.observe_at(Duration::from_millis(20), 10);
        let (est, fresh) = e.read_at(10).expect("observed");
        assert!((est - 20.0 * MS as f64).abs() < 1.0);
        assert!(fresh);
    }

    #[test]
    fn a_slower_response_is_taken_at_once() {
        let e = PeakEwma::default();
        e.observe_at(Duration::from_millis(1), 1);
        e.observe_at(Duration::from_millis(300), 2);
        let (est, _) = e.read_at(2).expect("observed");
        assert!(est >= 299.0 * MS as f64, "{est}");
    }

    #[test]
    fn faster_responses_pull_it_down_with_time_not_count() {
        let e = PeakEwma::default();
        let mut t = 1;
        e.observe_at(Duration::from_millis(100), t);
        // One fast response right after: barely moves.
        t += MS;
        e.observe_at(Duration::from_millis(1), t);
        let (est, _) = e.read_at(t).expect("observed");
        assert!(est > 90.0 * MS as f64, "{est}");
        // Fast responses for 4 time constants: close to the new latency.
        for _ in 0..800 {
            t += 10 * MS;
            e.observe_at(Duration::from_millis(1), t);
        }
        let (est, _) = e.read_at(t).expect("observed");
        assert!(est < 5.0 * MS as f64, "{est}");
    }

    #[test]
    fn an_idle_estimate_decays_and_goes_stale() {
        let e = PeakEwma::default();
        e.observe_at(Duration::from_millis(100), 1);
        let later = 1 + 3 * DECAY.as_nanos() as u64;
        let (est, fresh) = e.read_at(later).expect("observed");
        assert!(est < 6.0 * MS as f64, "{est}");
        assert!(!fresh);
    }
}
