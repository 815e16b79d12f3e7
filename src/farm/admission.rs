//! Slow start and admission: the last word on a server a policy picked.
//!
//! A server returning to rotation ramps its share of new requests from zero
//! to full over the farm's `slow_start`. This works for every policy without
//! touching them: after a policy picks a ramping server, [`admit`] keeps the
//! pick with probability `elapsed / slow_start` and otherwise asks the
//! policy again without it (falling back to it when nothing else is left).
//! The same place claims the single trial request of a server on
//! probation. Lock-free: a few atomic loads, and a random number only while
//! a ramp runs.

use super::{Server, ServerState};
use crate::ground::clock::now_ms;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Probation (`ServerState::probation`): not on probation.
pub(crate) const PROBATION_OFF: u8 = 0;
/// Out of rotation by live traffic, waiting for its one trial request.
pub(crate) const PROBATION_OPEN: u8 = 1;
/// The trial request is under way.
pub(crate) const PROBATION_TRIAL: u8 = 2;

/// Longest exclusion list [`admit`] extends on the stack.
const MAX_EXCLUDE: usize = 32;

/// What admission says about a picked server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Ramping and lost the draw: prefer another server.
    Skip,
    /// On probation and another request took the trial.
    Taken,
}

/// Asks `pick` for a server (excluding `exclude`) and applies admission.
#[inline]
pub fn admit(
    servers: &[Server],
    exclude: &[usize],
    pick: impl Fn(&[usize]) -> Option<usize>,
) -> Option<usize> {
    let first = pick(exclude)?;
    let verdict = servers[first].state.admission();
    if verdict == Admission::Admit || exclude.len() >= MAX_EXCLUDE {
        return (verdict != Admission::Taken).then_some(first);
    }
    let mut buf = [usize::MAX; MAX_EXCLUDE + 1];
    buf[..exclude.len()].copy_from_slice(exclude);
    buf[exclude.len()] = first;
    let second =
        pick(&buf[..=exclude.len()]).filter(|&i| servers[i].state.admission() != Admission::Taken);
    match (second, verdict) {
        (Some(i), _) => Some(i),
        (None, Admission::Skip) => Some(first),
        (None, _) => None,
    }
}

impl ServerState {
    /// Admission of a picked server: claims the probation trial, rolls the
    /// slow-start dice.
    #[inline]
    pub fn admission(&self) -> Admission {
        if self.on_probation() && !self.claim_trial() && !self.is_healthy() && !self.is_forced() {
            return Admission::Taken;
        }
        let f = self.slow_start_factor();
        if f >= 1.0 || fastrand::f64() < f {
            Admission::Admit
        } else {
            Admission::Skip
        }
    }

    /// Starts a slow-start ramp of `len` (nothing when zero).
    pub fn begin_ramp(&self, len: Duration) {
        if len.is_zero() {
            return;
        }
        self.ramp_len_ms
            .store(len.as_millis() as u64, Ordering::Relaxed);
        self.ramp_start_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn cancel_ramp(&self) {
        self.ramp_start_ms.store(0, Ordering::Relaxed);
    }

    /// The share of a full load this server takes now: 1.0 unless ramping.
    #[inline]
    pub fn slow_start_factor(&self) -> f64 {
        let start = self.ramp_start_ms.load(Ordering::Relaxed);
        if start == 0 {
            return 1.0;
        }
        let len = self.ramp_len_ms.load(Ordering::Relaxed);
        let elapsed = now_ms().saturating_sub(start);
        if len == 0 || elapsed >= len {
            self.ramp_start_ms.store(0, Ordering::Relaxed);
            return 1.0;
        }
        elapsed as f64 / len as f64
    }

    /// Claims the one trial request of a server on probation. True when this
    /// request is the trial.
    #[inline]
    pub(crate) fn claim_trial(&self) -> bool {
        let won = self
            .probation
            .compare_exchange(
                PROBATION_OPEN,
                PROBATION_TRIAL,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if won {
            self.trial_ms.store(now_ms(), Ordering::Relaxed);
        }
        won
    }

    /// Is the server waiting for its trial request?
    #[inline]
    pub fn on_probation(&self) -> bool {
        self.probation.load(Ordering::Relaxed) == PROBATION_OPEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::selection::testing::servers;

    fn round_robin(n: usize) -> impl Fn(&[usize]) -> Option<usize> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        move |ex: &[usize]| {
            let start = next.fetch_add(1, Ordering::Relaxed);
            (0..n).map(|k| (start + k) % n).find(|i| !ex.contains(i))
        }
    }

    #[test]
    fn a_ramping_server_gets_a_growing_share() {
        let s = servers(&[1, 1, 1]);
        // A ramp a quarter through: it started at stamp 1 and lasts four
        // times as long as the clock has run (at least 200 ms, so the picks
        // below barely move it).
        while now_ms() < 200 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let len = (now_ms() - 1) * 4;
        s[0].state.ramp_len_ms.store(len, Ordering::Relaxed);
        s[0].state.ramp_start_ms.store(1, Ordering::Relaxed);
        let f0 = s[0].state.slow_start_factor();
        let pick = round_robin(3);
        let mut hits = [0u32; 3];
        for _ in 0..30_000 {
            hits[admit(&s, &[], &pick).expect("pick")] += 1;
        }
        let f1 = s[0].state.slow_start_factor();
        assert!((0.2..0.35).contains(&f0), "factor at the start {f0}");
        // With round robin over three, a skip of server 0 sends the request
        // to server 1 and moves the rotation on by two, so its next turn
        // comes after two requests instead of three: per turn of server 0,
        // 3 requests with probability f (one of them its own) and 2 with
        // 1 - f (none), a share of f / (2 + f), not f / 3 (0.111, not 0.083,
        // at a quarter). The ramp moves while we pick (a loaded machine
        // makes that slow), so the share lies between what the first and
        // the last factor give; 0.015 is over six standard deviations of
        // 30,000 draws.
        let share = f64::from(hits[0]) / 30_000.0;
        let expected = |f: f64| f / (2.0 + f);
        assert!(
            share > expected(f0) - 0.015 && share < expected(f1) + 0.015,
            "share {share:.3}, expected between {:.3} and {:.3}",
            expected(f0),
            expected(f1)
        );
    }

    #[test]
    fn a_ramping_server_alone_still_serves() {
        let s = servers(&[1]);
        s[0].state.begin_ramp(Duration::from_secs(3600));
        let pick = round_robin(1);
        for _ in 0..100 {
            assert_eq!(admit(&s, &[], &pick), Some(0));
        }
    }

    #[test]
    fn probation_admits_one_request() {
        let s = servers(&[1, 1]);
        s[0].state.set_healthy(false);
        s[0].state
            .probation
            .store(PROBATION_OPEN, Ordering::Relaxed);
        // A policy that takes the first candidate in rotation.
        let first = |ex: &[usize]| (0..2).find(|&i| !ex.contains(&i) && s[i].state.in_rotation());
        assert_eq!(admit(&s, &[], first), Some(0), "the trial");
        assert!(!s[0].state.in_rotation(), "the trial is under way");
        assert_eq!(admit(&s, &[], first), Some(1), "trial taken: elsewhere");
        assert_eq!(admit(&s, &[1], first), None);
    }
}
