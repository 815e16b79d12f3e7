//! What one client connection is doing, shared by its IO wrapper, its
//! requests and its watchdog: whether a request head is arriving, how many
//! requests are in flight, since when it has been idle, and the findings of
//! the framing scanner. The watchdog turns that into the header timeout,
//! the idle timeout, eviction at `max_connections`, and closing a
//! connection that cancels most of its requests (HTTP/2 rapid reset).
//!
//! All of it is atomics; a request touches them a few times and takes no
//! lock. Times are millisecond ticks since the connection was accepted.

use super::framing::Violation;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// At least this many requests cancelled by the client before their answer,
/// and more than half of all, closes the connection (HTTP/2 rapid reset,
/// CVE-2023-44487; the rule Envoy applies to premature resets).
pub const CANCELLED_MIN: u32 = 100;

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took longer than `header_timeout`: close at once.
    Header,
    /// No request for `idle_timeout`: close gracefully.
    Idle,
    /// Evicted to make room at `max_connections`.
    Evicted,
    /// The client cancels most of its requests: close at once.
    Abusive,
    /// Idle for `park_after`: release hyper's connection state and buffers
    /// and wait for the next request with none (`park.rs`).
    Park,
}

#[derive(Debug)]
pub struct ConnActivity {
    accepted: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Tick since which a request head has been arriving; 0: none.
    head_since: AtomicU64,
    /// Tick since which no request has been in flight.
    idle_since: AtomicU64,
    in_flight: AtomicU32,
    requests: AtomicU32,
    cancelled: AtomicU32,
    /// The framing scanner's finding: request index, and the violation.
    finding_at: AtomicU32,
    finding: AtomicU8,
    /// Set when HTTP serving ended (closed or upgraded): the IO wrapper
    /// stops scanning.
    done: AtomicBool,
    evicted: AtomicBool,
    abusive: AtomicBool,
    /// Parking: idle HTTP/1 connections give up their buffers after this.
    park_after: Option<Duration>,
    /// Request heads the framing scanner has read completely.
    heads: AtomicU32,
    /// `idle_since` when the connection last parked (parks once per idle).
    parked_idle: AtomicU64,
    /// HTTP/2, an upgrade or a finding: this connection never parks.
    no_park: AtomicBool,
    /// A request came over HTTP/2: the connection is HTTP/2.
    http2: AtomicBool,
    /// hyper's connection is being closed to park: keep the socket.
    parking: AtomicBool,
    wake: Notify,
}

impl ConnActivity {
    /// A connection just accepted: its first request head is due within
    /// `header_timeout` from now.
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> Self {
        let now = 1;
        ConnActivity {
            accepted: Instant::now(),
            header_timeout,
            idle_timeout,
            head_since: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            in_flight: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            cancelled: AtomicU32::new(0),
            finding_at: AtomicU32::new(u32::MAX),
            finding: AtomicU8::new(0),
            done: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            abusive: AtomicBool::new(false),
            park_after: None,
            heads: AtomicU32::new(0),
            parked_idle: AtomicU64::new(0),
            no_park: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Lets this (plain HTTP/1) connection park after `after` idle.
    pub fn with_park_after(mut self, after: Duration) -> Self {
        self.park_after = Some(after);
        self
    }

    /// Milliseconds since accept, plus one so that 0 means "never".
    fn tick(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, tick: u64) -> Instant {
        self.accepted + Duration::from_millis(tick.saturating_sub(1))
    }

    // === impl ConnActivity: the IO side ===

    /// Bytes of a request head arrived (`in_head`), or the last head is
    /// complete (`!in_head`).
    pub fn head_progress(&self, in_head: bool, heads: u32) {
        self.heads.store(heads, Relaxed);
        let since = self.head_since.load(Relaxed);
        if in_head && since == 0 {
            self.head_since.store(self.tick(), Relaxed);
            self.wake.notify_one();
        } else if !in_head && since != 0 {
            self.head_since.store(0, Relaxed);
        }
    }

    pub fn set_finding(&self, index: u32, v: Violation) {
        self.finding.store(v as u8 + 1, Relaxed);
        self.finding_at.store(index, Relaxed);
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Relaxed)
    }

    pub fn set_done(&self) {
        self.done.store(true, Relaxed);
    }

    pub fn never_park(&self) {
        self.no_park.store(true, Relaxed);
    }

    /// Has a request come over HTTP/2 on this connection?
    pub fn is_http2(&self) -> bool {
        self.http2.load(Relaxed)
    }

    pub fn is_parking(&self) -> bool {
        self.parking.load(Relaxed)
    }

    /// Can hyper's connection be closed now without losing anything? No
    /// request in flight, no head arriving, every head read from the
    /// socket already handed to hyper's service, still HTTP/1.
    pub fn can_park(&self) -> bool {
        self.park_after.is_some()
            && !self.no_park.load(Relaxed)
            && self.in_flight.load(Relaxed) == 0
            && self.head_since.load(Relaxed) == 0
            && self.heads.load(Relaxed) == self.requests.load(Relaxed)
    }

    /// Parking starts (`true`: hyper's shutdown keeps the socket) or ends.
    pub fn set_parking(&self, on: bool) {
        if on {
            self.parked_idle
                .store(self.idle_since.load(Relaxed), Relaxed);
        }
        self.parking.store(on, Relaxed);
    }

    // === impl ConnActivity: the request side ===

    /// A request starts; returns its index on this connection.
    pub fn request_started(&self, http2: bool) -> u32 {
        self.in_flight.fetch_add(1, Relaxed);
        if http2 {
            // HTTP/2 heads are not scanned: a request means the head is in.
            self.head_since.store(0, Relaxed);
            self.http2.store(true, Relaxed);
        }
        self.requests.fetch_add(1, Relaxed)
    }

    /// A request's response ended (or was abandoned).
    pub fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.idle_since.store(self.tick(), Relaxed);
            self.wake.notify_one();
        }
    }

    /// The client cancelled a request before its answer.
    pub fn request_cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Relaxed) + 1;
        if cancelled >= CANCELLED_MIN && cancelled * 2 > self.requests.load(Relaxed) {
            self.abusive.store(true, Relaxed);
            self.wake.notify_one();
        }
    }

    /// The framing finding for request `index`, if the scanner made one at
    /// or before it.
    pub fn finding_for(&self, index: u32) -> Option<Violation> {
        if self.finding_at.load(Relaxed) > index {
            return None;
        }
        VIOLATIONS
            .get(usize::from(self.finding.load(Relaxed)).checked_sub(1)?)
            .copied()
    }

    // === impl ConnActivity: the listener side ===

    /// Can this connection be closed to make room without losing a
    /// request? (No request in flight.) Returns since when it has waited.
    pub fn evictable_since(&self) -> Option<Instant> {
        if self.in_flight.load(Relaxed) > 0 || self.evicted.load(Relaxed) {
            return None;
        }
        let head = self.head_since.load(Relaxed);
        Some(self.at(if head != 0 {
            head
        } else {
            self.idle_since.load(Relaxed)
        }))
    }

    pub fn evict(&self) {
        self.evicted.store(true, Relaxed);
        self.wake.notify_one();
    }

    /// When the connection must end and why, from its state now.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        if self.abusive.load(Relaxed) {
            return Some((Instant::now(), Expiry::Abusive));
        }
        if self.evicted.load(Relaxed) {
            return Some((Instant::now(), Expiry::Evicted));
        }
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        let idle = self.idle_since.load(Relaxed);
        let head = self.head_since.load(Relaxed);
        if head != 0 {
            return Some((
                self.at(head.max(idle)) + self.header_timeout,
                Expiry::Header,
            ));
        }
        let close = (self.at(idle) + self.idle_timeout, Expiry::Idle);
        match self.park_after {
            // Once per idle period, and only after a request.
            Some(after)
                if self.requests.load(Relaxed) > 0
                    && self.parked_idle.load(Relaxed) != idle
                    && !self.no_park.load(Relaxed)
                    && after < self.idle_timeout =>
            {
                Some((self.at(idle) + after, Expiry::Park))
            }
            _ => Some(close),
        }
    }

    /// Marks the current idle period as one that will not park (the
    /// connection could not, e.g. a head was half read): the idle timeout
    /// still applies.
    pub fn skip_park(&self) {
        self.parked_idle
            .store(self.idle_since.load(Relaxed), Relaxed);
    }

    /// Resolves when the connection must end. After it returned
    /// [`Expiry::Idle`] pass `idle: false`, so that only the other reasons
    /// are watched while the connection winds down.
    pub async fn expired(&self, idle: bool) -> Expiry {
        loop {
            let woken = self.wake.notified();
            match self.deadline() {
                Some((_, Expiry::Idle | Expiry::Park)) if !idle => woken.await,
                Some((when, why)) if when <= Instant::now() => return why,
                Some((when, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(when) => {}
                        _ = woken => {}
                    }
                }
                None => woken.await,
            }
        }
    }
}

const VIOLATIONS: [Violation; 11] = [
    Violation::BareLf,
    Violation::BareCr,
    Violation::ObsFold,
    Violation::BadFieldName,
    Violation::ClAndTe,
    Violation::DuplicateCl,
    Violation::BadCl,
    Violation::BadTe,
    Violation::TeInHttp10,
    Violation::BadChunk,
    Violation::HeadTooLarge,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_codes_round_trip() {
        for (i, v) in VIOLATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i);
            let a = ConnActivity::new(Duration::from_secs(1), Duration::from_secs(1));
            a.set_finding(3, *v);
            assert_eq!(a.finding_for(2), None);
            assert_eq!(a.finding_for(3), Some(*v));
            assert_eq!(a.finding_for(4), Some(*v));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn header_then_idle_deadlines() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        // The first head is due from accept.
        let t0 = Instant::now();
        assert_eq!(a.expired(true).await, Expiry::Header);
        assert_eq!(Instant::now() - t0, Duration::from_secs(10));

        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        a.head_progress(false, 1);
        let i = a.request_started(false);
        assert_eq!(i, 0);
        a.request_ended();
        let t0 = Instant::now();
        assert_eq!(a.expired(true).await, Expiry::Idle);
        assert_eq!(Instant::now() - t0, Duration::from_secs(90));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_hold_off_timeouts() {
        let a = ConnActivity::new(Duration::from_secs(1), Duration::from_secs(1));
        a.head_progress(false, 1);
        a.request_started(false);
        let r = tokio::time::timeout(Duration::from_secs(60), a.expired(true)).await;
        assert!(r.is_err(), "a request in flight must not time out");
        a.request_ended();
        assert_eq!(a.expired(true).await, Expiry::Idle);
    }

    #[test]
    fn rapid_cancel_marks_abusive() {
        let a = ConnActivity::new(Duration::from_secs(1), Duration::from_secs(1));
        for _ in 0..CANCELLED_MIN - 1 {
            a.request_started(true);
            a.request_cancelled();
            a.request_ended();
        }
        assert!(a.deadline().is_some_and(|(_, e)| e != Expiry::Abusive));
        a.request_started(true);
        a.request_cancelled();
        assert_eq!(a.deadline().map(|(_, e)| e), Some(Expiry::Abusive));
    }

    #[test]
    fn mostly_completed_connections_are_not_abusive() {
        let a = ConnActivity::new(Duration::from_secs(1), Duration::from_secs(1));
        for i in 0..1000 {
            a.request_started(true);
            if i % 3 == 0 {
                a.request_cancelled();
            }
            a.request_ended();
        }
        assert_ne!(a.deadline().map(|(_, e)| e), Some(Expiry::Abusive));
    }
}
