//! What one client connection is doing, shared by its IO wrapper, its
//! requests and its watchdog: whether a request head is arriving, how many
//! requests are in flight, since when it has been idle, and the findings of
//! the framing scanner. The watchdog turns that into the header timeout,
//! the idle timeout, eviction at `max_connections`, closing a connection
//! that cancels most of its requests (HTTP/2 rapid reset), and the body and
//! send timeouts: the IO wrapper notes when a read of a request body or a
//! write of a response starts waiting on the client and when it moves again
//! (one relaxed load per read or write, no timer); the watchdog's one timer
//! covers them all.
//!
//! All of it is atomics; a request touches them a few times and takes no
//! lock. Times are millisecond ticks since the connection was accepted.

use super::framing::Violation;
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8,
    Ordering::{AcqRel, Relaxed, Release},
};
use std::task::{Context, Poll};
use std::time::Duration;
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
    /// A request body read waited longer than `body_timeout`: close at once.
    Body,
    /// A response write waited longer than `send_timeout`: close at once.
    Send,
}

#[derive(Debug)]
pub struct ConnActivity {
    accepted: Instant,
    header_timeout: Duration,
    idle_timeout: Duration,
    body_timeout: Duration,
    send_timeout: Duration,
    /// Tick since which a request head has been arriving; 0: none.
    head_since: AtomicU64,
    /// Bytes of the current request head have arrived (a stalled head is
    /// answered 408; a connection that sent nothing is closed silently).
    head_bytes: AtomicBool,
    /// Tick since which a read of a request body waits for the client; 0: none.
    read_wait: AtomicU64,
    /// Tick since which a response write waits for the client; 0: none.
    write_wait: AtomicU64,
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
    /// Requests the HTTP/1 engine served before it handed the connection
    /// to hyper: the framing scanner's head count starts after them.
    heads_before: AtomicU32,
    /// `idle_since` when the connection last parked (parks once per idle).
    parked_idle: AtomicU64,
    /// HTTP/2, an upgrade or a finding: this connection never parks.
    no_park: AtomicBool,
    /// A request came over HTTP/2: the connection is HTTP/2.
    http2: AtomicBool,
    /// hyper's connection is being closed to park: keep the socket.
    parking: AtomicBool,
    wake: Wake,
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
            body_timeout: Duration::MAX,
            send_timeout: Duration::MAX,
            head_since: AtomicU64::new(now),
            head_bytes: AtomicBool::new(false),
            read_wait: AtomicU64::new(0),
            write_wait: AtomicU64::new(0),
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
            heads_before: AtomicU32::new(0),
            parked_idle: AtomicU64::new(0),
            no_park: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            wake: Wake::default(),
        }
    }

    /// Lets this (plain HTTP/1) connection park after `after` idle.
    pub fn with_park_after(mut self, after: Duration) -> Self {
        self.park_after = Some(after);
        self
    }

    /// Sets `proxy.body_timeout` and `proxy.send_timeout`.
    pub fn with_io_timeouts(mut self, body: Duration, send: Duration) -> Self {
        self.body_timeout = body;
        self.send_timeout = send;
        self
    }

    /// Milliseconds since accept, plus one so that 0 means "never".
    fn tick(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64 + 1
    }

    fn at(&self, tick: u64) -> Instant {
        self.accepted + Duration::from_millis(tick.saturating_sub(1))
    }

    /// `at(tick) + d`, saturating (timeouts may be "never").
    fn after(&self, tick: u64, d: Duration) -> Instant {
        let at = self.at(tick);
        at.checked_add(d)
            .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365))
    }

    // === impl ConnActivity: the IO side ===

    /// Bytes of a request head arrived (`in_head`), or the last head is
    /// complete (`!in_head`).
    pub fn head_progress(&self, in_head: bool, heads: u32) {
        let heads = heads.saturating_add(self.heads_before.load(Relaxed));
        self.heads.store(heads, Relaxed);
        let since = self.head_since.load(Relaxed);
        if in_head && since == 0 {
            self.head_since.store(self.tick(), Relaxed);
            self.wake.notify();
        } else if !in_head && since != 0 {
            self.head_since.store(0, Relaxed);
        }
        if in_head != self.head_bytes.load(Relaxed) {
            self.head_bytes.store(in_head, Relaxed);
        }
    }

    /// The bytes are not an HTTP/1 head (HTTP/2, a finding, a tunnel).
    pub fn not_http1_head(&self) {
        self.head_bytes.store(false, Relaxed);
    }

    /// Has part of an HTTP/1 request head arrived that is not complete yet?
    pub fn head_started(&self) -> bool {
        self.head_bytes.load(Relaxed)
    }

    /// A read of a request body found nothing to read: it waits for the
    /// client from now (unless it already did).
    #[inline]
    pub fn read_waiting(&self) {
        if self.read_wait.load(Relaxed) == 0 {
            self.read_wait.store(self.tick(), Relaxed);
            self.wake.notify();
        }
    }

    /// Bytes were read: no read waits.
    #[inline]
    pub fn read_progress(&self) {
        if self.read_wait.load(Relaxed) != 0 {
            self.read_wait.store(0, Relaxed);
        }
    }

    /// A write could not go out: it waits for the client to read.
    #[inline]
    pub fn write_waiting(&self) {
        if self.write_wait.load(Relaxed) == 0 {
            self.write_wait.store(self.tick(), Relaxed);
            self.wake.notify();
        }
    }

    /// Bytes went out: no write waits.
    #[inline]
    pub fn write_progress(&self) {
        if self.write_wait.load(Relaxed) != 0 {
            self.write_wait.store(0, Relaxed);
        }
    }

    pub fn set_finding(&self, index: u32, v: Violation) {
        let index = index.saturating_add(self.heads_before.load(Relaxed));
        self.finding.store(v as u8 + 1, Relaxed);
        self.finding_at.store(index, Relaxed);
    }

    /// The HTTP/1 engine hands the connection to hyper: the framing
    /// scanner, starting afresh, counts heads after the requests served.
    pub fn continue_after_engine(&self) {
        self.heads_before
            .store(self.requests.load(Relaxed), Relaxed);
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
            self.wake.notify();
        }
    }

    /// The client cancelled a request before its answer.
    pub fn request_cancelled(&self) {
        let cancelled = self.cancelled.fetch_add(1, Relaxed) + 1;
        if cancelled >= CANCELLED_MIN && cancelled * 2 > self.requests.load(Relaxed) {
            self.abusive.store(true, Relaxed);
            self.wake.notify();
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
        self.wake.notify();
    }

    /// When the connection must end and why, from its state now.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        if self.abusive.load(Relaxed) {
            return Some((Instant::now(), Expiry::Abusive));
        }
        if self.evicted.load(Relaxed) {
            return Some((Instant::now(), Expiry::Evicted));
        }
        // A write may wait with no request in flight (the last response
        // still in hyper's buffer), a body read only with one.
        let write = self.write_wait.load(Relaxed);
        let send = (write != 0).then(|| (self.after(write, self.send_timeout), Expiry::Send));
        if self.in_flight.load(Relaxed) > 0 {
            let read = self.read_wait.load(Relaxed);
            let body = (read != 0).then(|| (self.after(read, self.body_timeout), Expiry::Body));
            return match (send, body) {
                (Some(s), Some(b)) => Some(if s.0 <= b.0 { s } else { b }),
                (s, b) => s.or(b),
            };
        }
        if let Some(send) = send {
            return Some(send);
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
        let timer = std::pin::pin!(unset_timer());
        self.expired_on(idle, timer).await
    }

    /// [`expired`](Self::expired) on the connection's own `timer`, reused
    /// wait after wait: moving its deadline later only stores a number
    /// (tokio re-arms it when the old deadline passes), so a keep-alive
    /// connection arms no new timer per request.
    pub async fn expired_on(
        &self,
        idle: bool,
        mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Expiry {
        loop {
            let woken = Woken(&self.wake);
            match self.deadline() {
                Some((_, Expiry::Idle | Expiry::Park)) if !idle => woken.await,
                // Due now, whatever the clock says.
                Some((_, why @ (Expiry::Abusive | Expiry::Evicted))) => return why,
                Some((when, why)) => {
                    // No clock read: a deadline already past fires the
                    // timer at its first poll, and the timer having fired
                    // at or after the deadline in force is the expiry.
                    // A deadline that moved later (each request moves the
                    // idle one on) leaves the timer where it is: it fires
                    // early, once, and is set again then; set per request,
                    // it was a timer update each time.
                    let armed = timer.deadline();
                    if timer.is_elapsed() {
                        if armed >= when {
                            return why;
                        }
                        timer.as_mut().reset(when);
                    } else if armed > when {
                        timer.as_mut().reset(when);
                    }
                    tokio::select! {
                        _ = timer.as_mut() => {}
                        _ = woken => {}
                    }
                }
                None => woken.await,
            }
        }
    }
}

/// A timer for [`ConnActivity::expired_on`] (or a connection's response
/// timer) before its first deadline: far off, so that the first deadline
/// is earlier and sets it. (One set at "now" would fire at once and be set
/// again, a wasted wake per connection, since a timer is only moved
/// earlier.)
pub fn unset_timer() -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_secs(86_400 * 365))
}

/// Wakes a connection's one waiter, its watchdog (every wait on a
/// connection's activity runs in the connection's own task, one at a
/// time): a flag that stays set until a wait sees it, as a `Notify`
/// permit does, and the waiting task's waker. No lock and no waiter list:
/// the watchdog waits once or twice per request.
#[derive(Debug, Default)]
struct Wake {
    flag: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    fn notify(&self) {
        self.flag.store(true, Release);
        self.waker.wake();
    }
}

/// One wait for [`Wake::notify`]. Dropped, it takes its waker back, so a
/// notification while nobody waits only sets the flag (it does not
/// schedule the connection's task for nothing).
struct Woken<'a>(&'a Wake);

impl Future for Woken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let wake = self.0;
        if wake.flag.swap(false, AcqRel) {
            return Poll::Ready(());
        }
        wake.waker.register(cx.waker());
        // A notification between the look and the registration.
        if wake.flag.swap(false, AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Woken<'_> {
    fn drop(&mut self) {
        drop(self.0.waker.take());
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
    async fn a_deadline_passed_before_the_wait_expires_at_once() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        tokio::time::advance(Duration::from_secs(30)).await;
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let t0 = Instant::now();
        assert_eq!(a.expired_on(true, timer.as_mut()).await, Expiry::Header);
        assert!(Instant::now() - t0 <= Duration::from_millis(1));
        // The same timer, fired: the deadline it fired for is still the
        // expiry, at once.
        assert_eq!(a.expired_on(true, timer.as_mut()).await, Expiry::Header);
        assert!(Instant::now() - t0 <= Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_expires_at_the_later_time() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        a.head_progress(false, 1);
        a.request_started(false);
        a.request_ended();
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let wait =
            tokio::time::timeout(Duration::from_secs(30), a.expired_on(true, timer.as_mut()));
        assert!(wait.await.is_err(), "idle for 30 s of 90");
        // Another request: the idle deadline moves 30 s later; the timer
        // still set for the old one fires first and must not end it.
        a.request_started(false);
        a.request_ended();
        let t1 = Instant::now();
        assert_eq!(a.expired_on(true, timer.as_mut()).await, Expiry::Idle);
        assert_eq!(Instant::now() - t1, Duration::from_secs(90));
    }

    /// On the real clock: the deadline of an evicted (or abusive)
    /// connection is "now" on every look, never one the timer fired for.
    #[tokio::test]
    async fn an_evicted_connection_expires_at_once() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        a.evict();
        let wait = tokio::time::timeout(Duration::from_secs(5), a.expired(true));
        assert_eq!(wait.await, Ok(Expiry::Evicted));
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

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_or_unread_response_expires() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90))
            .with_io_timeouts(Duration::from_secs(3), Duration::from_secs(5));
        a.head_progress(false, 1);
        a.request_started(false);
        // Reading the body: a read that got bytes keeps it alive.
        a.read_waiting();
        tokio::time::advance(Duration::from_secs(2)).await;
        a.read_progress();
        a.read_waiting();
        let t0 = Instant::now();
        assert_eq!(a.expired(true).await, Expiry::Body);
        assert_eq!(Instant::now() - t0, Duration::from_secs(3));
        a.read_progress();

        // The response: a write that waits too long, even once the request
        // has ended (its last bytes in the buffer).
        a.write_waiting();
        a.request_ended();
        let t0 = Instant::now();
        assert_eq!(a.expired(true).await, Expiry::Send);
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        a.write_progress();
        assert_eq!(a.expired(true).await, Expiry::Idle);
    }

    #[test]
    fn only_a_started_head_is_a_started_head() {
        let a = ConnActivity::new(Duration::from_secs(10), Duration::from_secs(90));
        assert!(!a.head_started());
        a.head_progress(true, 0);
        assert!(a.head_started());
        a.head_progress(false, 1);
        assert!(!a.head_started());
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
