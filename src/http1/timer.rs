//! Coarse shared timers: deadlines rounded up to a shared tick (10 ms by
//! default), so a connection's header, idle and response timeouts cost no
//! timer registration of their own.
//!
//! One driver thread advances a tick counter and wakes a ring of
//! `Notify` slots, one per tick; a sleep waits on its deadline's slot. A
//! thousand requests whose deadlines fall in the same 10 ms share one
//! slot, as Pingora's `pingora-timeout` and nginx's rounded timers do.
//! Deadlines beyond the ring's horizon wait on its far end and look
//! again. Nothing is allocated per sleep; the driver stops when the last
//! handle is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline passed")]
pub struct Elapsed;

/// A handle on a shared coarse timer (cheap to clone).
#[derive(Clone, Debug)]
pub struct CoarseTimer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    resolution: Duration,
    /// Ticks passed since `start`, as the driver last saw.
    now: AtomicU64,
    /// Slot `t % len` is woken when tick `t` passes.
    slots: Box<[Notify]>,
}

impl CoarseTimer {
    /// A timer with a 10 ms tick and a 40 s ring.
    pub fn new() -> Self {
        CoarseTimer::with_resolution(Duration::from_millis(10), 4096)
    }

    /// A timer ticking every `resolution` with `slots` slots (the horizon
    /// is their product; later deadlines wait in rounds).
    pub fn with_resolution(resolution: Duration, slots: usize) -> Self {
        let resolution = resolution.max(Duration::from_millis(1));
        let inner = Arc::new(Inner {
            start: Instant::now(),
            resolution,
            now: AtomicU64::new(0),
            slots: (0..slots.max(2)).map(|_| Notify::new()).collect(),
        });
        let weak = Arc::downgrade(&inner);
        // A thread rather than a task: it ticks whatever runtime (or
        // none) the sleepers run on, and whatever keeps that runtime busy.
        let _ = std::thread::Builder::new()
            .name("farmgate-timer".into())
            .spawn(move || drive(weak, resolution));
        CoarseTimer { inner }
    }

    /// The tick a deadline falls in (rounded up: never early).
    fn tick_of(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.inner.start);
        let res = self.inner.resolution.as_nanos();
        u64::try_from(since.as_nanos().div_ceil(res)).unwrap_or(u64::MAX)
    }

    /// Completes once `deadline` has passed (within one tick after it).
    pub async fn sleep_until(&self, deadline: Instant) {
        let target = self.tick_of(deadline);
        let len = self.inner.slots.len() as u64;
        loop {
            let now = self.inner.now.load(Ordering::Acquire);
            if now >= target {
                return;
            }
            // Beyond the horizon: wake at its far end and look again.
            let wake = target.min(now + len - 1);
            let notified = self.inner.slots[(wake % len) as usize].notified();
            tokio::pin!(notified);
            // Registered before `now` is read again: a tick that passes
            // in between is not missed.
            notified.as_mut().enable();
            if self.inner.now.load(Ordering::Acquire) >= wake {
                continue;
            }
            notified.await;
        }
    }

    /// Runs `fut` until `deadline`.
    pub async fn timeout<F: Future>(
        &self,
        deadline: Instant,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            () = self.sleep_until(deadline) => Err(Elapsed),
        }
    }
}

impl Default for CoarseTimer {
    fn default() -> Self {
        CoarseTimer::new()
    }
}

/// The driver: every tick, publish it and wake the slots it passed.
fn drive(timer: Weak<Inner>, resolution: Duration) {
    let mut done = 0u64;
    loop {
        std::thread::sleep(resolution);
        let Some(inner) = timer.upgrade() else {
            return;
        };
        let elapsed = inner.start.elapsed().as_nanos() / resolution.as_nanos();
        let now = u64::try_from(elapsed).unwrap_or(u64::MAX);
        inner.now.store(now, Ordering::Release);
        let len = inner.slots.len() as u64;
        // After a stall longer than the ring, every slot once is enough.
        let from = done.max(now.saturating_sub(len - 1)) + 1;
        for t in from..=now {
            inner.slots[(t % len) as usize].notify_waiters();
        }
        done = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_are_never_early_and_share_slots() {
        let timer = CoarseTimer::with_resolution(Duration::from_millis(5), 64);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        // A thousand sleeps on one deadline: one slot, all woken.
        let sleeps = (0..1000).map(|_| timer.sleep_until(deadline));
        futures_util::future::join_all(sleeps).await;
        assert!(Instant::now() >= deadline);
        // A passed deadline returns at once; a future one waits.
        timer.sleep_until(start).await;
        let r = timer
            .timeout(
                Instant::now() + Duration::from_millis(20),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        let r = timer
            .timeout(Instant::now() + Duration::from_secs(60), async { 7 })
            .await;
        assert_eq!(r, Ok(7));
    }

    #[tokio::test]
    async fn deadlines_beyond_the_horizon_wait_in_rounds() {
        // 4 slots of 5 ms: a 20 ms horizon; 70 ms needs several rounds.
        let timer = CoarseTimer::with_resolution(Duration::from_millis(5), 4);
        let deadline = Instant::now() + Duration::from_millis(70);
        timer.sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn the_driver_stops_with_the_last_handle() {
        let timer = CoarseTimer::with_resolution(Duration::from_millis(1), 4);
        let weak = Arc::downgrade(&timer.inner);
        drop(timer);
        assert!(weak.upgrade().is_none());
    }
}
