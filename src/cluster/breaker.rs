//! The circuit breaker in front of Redis: after `breaker_failures` failed
//! operations in a row it opens, and for `breaker_cooldown` no operation
//! touches Redis (each fails at once, so nothing waits on a dead server);
//! then one trial goes through, and its outcome closes or re-opens it.
//! Lock-free: a few atomics, read by every operation.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a recorded outcome did to the breaker (for logging once per change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    None,
    Opened,
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which it stays open; 0: closed.
    open_until: AtomicU64,
    /// A half-open trial is under way.
    trial: AtomicBool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            trial: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means closed.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// May an operation go to Redis now? While open: no, except one trial
    /// once the cooldown has passed.
    pub fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        self.now_ms() >= until
            && self
                .trial
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.open_until.load(Ordering::Acquire) == 0
    }

    pub fn success(&self) -> Flip {
        self.failures.store(0, Ordering::Relaxed);
        self.trial.store(false, Ordering::Release);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            Flip::Closed
        } else {
            Flip::None
        }
    }

    pub fn failure(&self) -> Flip {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let was_open = !self.is_closed();
        if was_open || n >= self.threshold {
            self.open_until.store(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::Release,
            );
            self.trial.store(false, Ordering::Release);
        }
        if !was_open && n >= self.threshold {
            Flip::Opened
        } else {
            Flip::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_lets_one_trial_through() {
        let b = Breaker::new(3, Duration::from_millis(30));
        assert_eq!(b.failure(), Flip::None);
        assert_eq!(b.failure(), Flip::None);
        assert!(b.allow());
        assert_eq!(b.failure(), Flip::Opened);
        assert!(!b.allow(), "open: nothing goes through");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "after the cooldown one trial");
        assert!(!b.allow(), "and only one");
        assert_eq!(b.failure(), Flip::None, "a failed trial re-opens quietly");
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        assert_eq!(b.success(), Flip::Closed);
        assert!(b.allow() && b.allow(), "closed: everything goes through");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(60));
        b.failure();
        assert_eq!(b.success(), Flip::None);
        assert_eq!(b.failure(), Flip::None);
        assert!(b.is_closed());
    }
}
