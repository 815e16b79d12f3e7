//! HTTP/2 connections to one backend address (the HTTP/2 side of a
//! [`BackendPool`]): few connections, each carrying many requests at once.
//!
//! A request takes a stream on the first open connection with a stream to
//! spare: the server's `SETTINGS_MAX_CONCURRENT_STREAMS`, read from the
//! connection as it changes. When every connection is full, one more is
//! opened (one connect at a time per address: the others wait for it and
//! share it). Connections stay open while idle, kept alive by PINGs
//! (`PING_EVERY`; no answer within `PING_TIMEOUT` closes one), so a quiet
//! farm's next call pays no handshake. A connection the server sent GOAWAY
//! on is drained: in-flight streams finish on it, new ones go elsewhere.
//!
//! Each request is balanced on its own (the farm picks a server per
//! request, this picks a connection to that server), so one long-lived
//! client connection never pins its calls to one server.
//!
//! Reads (every request) go through an `ArcSwap` of the connection list;
//! only opening or closing a connection writes it.

use super::body::UpstreamBody;
use super::pool::BackendPool;
use arc_swap::ArcSwap;
use hyper::client::conn::http2;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// How often an HTTP/2 backend connection is PINGed, idle or not.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A PING unanswered this long closes the connection (its streams fail).
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams assumed per connection until the server's SETTINGS say
/// otherwise (RFC 9113 recommends servers allow at least 100).
pub const DEFAULT_MAX_STREAMS: usize = 100;
/// Streams per connection at most, whatever the server allows: h2 closes
/// a connection (GOAWAY ENHANCE_YOUR_CALM, "too_many_data_frames") that
/// holds more small DATA frames unread than its budget (about 180 at the
/// 64 KiB default, not settable through hyper); a unary gRPC answer is one
/// small frame before its trailers. Under load, more connections instead.
pub const STREAMS_PER_CONNECTION: usize = 100;

pub type Sender = http2::SendRequest<UpstreamBody>;

/// One HTTP/2 connection to a backend.
pub struct H2Conn {
    sender: Sender,
    /// Streams open on it (requests whose response has not ended).
    streams: AtomicUsize,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, kept current by the
    /// connection's driver.
    max_streams: Arc<AtomicUsize>,
    /// GOAWAY received or the connection ended: no new streams.
    draining: AtomicBool,
}

impl H2Conn {
    /// Takes no new streams from now on (GOAWAY or closed).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Takes a stream when one is free.
    fn try_take(self: &Arc<Self>) -> Option<Stream> {
        if self.draining.load(Ordering::Relaxed) || self.sender.is_closed() {
            return None;
        }
        let max = self.max_streams.load(Ordering::Relaxed);
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Stream(self.clone()))
    }
}

/// A stream taken on a connection; dropped when its response ends, which
/// frees the stream for another request.
pub struct Stream(Arc<H2Conn>);

impl Stream {
    pub fn sender(&self) -> Sender {
        self.0.sender.clone()
    }
    pub fn conn(&self) -> &H2Conn {
        &self.0
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What an `auto` farm learned by ALPN about an `https://` address.
const UNKNOWN: u8 = 0;
const SPEAKS_HTTP1: u8 = 1;

/// The HTTP/2 connections to one address.
pub struct H2Conns {
    conns: ArcSwap<Vec<Arc<H2Conn>>>,
    /// One connect at a time: the requests that found every connection
    /// full wait for it and then share it.
    pub(super) connecting: tokio::sync::Mutex<()>,
    learned: AtomicU8,
}

impl Default for H2Conns {
    fn default() -> Self {
        H2Conns {
            conns: ArcSwap::from_pointee(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            learned: AtomicU8::new(UNKNOWN),
        }
    }
}

impl H2Conns {
    /// A stream on the first connection with one to spare.
    #[inline]
    pub fn checkout(&self) -> Option<Stream> {
        self.conns.load().iter().find_map(H2Conn::try_take)
    }

    /// Open connections (draining ones included).
    pub fn len(&self) -> usize {
        self.conns.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams open over all connections.
    pub fn streams(&self) -> usize {
        self.conns
            .load()
            .iter()
            .map(|c| c.streams.load(Ordering::Relaxed))
            .sum()
    }

    /// Each open connection's stream limit (the server's SETTINGS).
    pub fn stream_limits(&self) -> Vec<usize> {
        self.conns
            .load()
            .iter()
            .map(|c| c.max_streams.load(Ordering::Relaxed))
            .collect()
    }

    /// The stream limit the server announced last, for a new connection
    /// to assume until its own SETTINGS arrive.
    pub fn known_limit(&self) -> Option<usize> {
        let conns = self.conns.load();
        conns.last().map(|c| c.max_streams.load(Ordering::Relaxed))
    }

    /// An `auto` farm's server answered ALPN without `h2`.
    pub fn speaks_http1(&self) -> bool {
        self.learned.load(Ordering::Relaxed) == SPEAKS_HTTP1
    }

    pub fn learn_http1(&self) {
        self.learned.store(SPEAKS_HTTP1, Ordering::Relaxed);
    }

    /// Adds a new connection and drives it on a task of its own until it
    /// ends; it then leaves the list (of `pool`, if still alive).
    /// `assumed`: the stream limit until the server's SETTINGS arrive.
    pub fn add<C>(
        &self,
        sender: Sender,
        conn: C,
        assumed: usize,
        pool: Weak<BackendPool>,
    ) -> Arc<H2Conn>
    where
        C: MaxStreams + Future<Output = hyper::Result<()>> + Send + Unpin + 'static,
    {
        let c = Arc::new(H2Conn {
            sender,
            streams: AtomicUsize::new(0),
            max_streams: Arc::new(AtomicUsize::new(assumed)),
            draining: AtomicBool::new(false),
        });
        self.conns.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(c.clone());
            list
        });
        let drive = Drive::new(conn, c.max_streams.clone());
        let done = c.clone();
        tokio::spawn(async move {
            if let Err(e) = drive.await {
                let address = pool.upgrade().map(|p| p.address().clone());
                tracing::debug!(
                    backend = address.as_deref(),
                    "HTTP/2 backend connection: {e}"
                );
            }
            done.drain();
            if let Some(pool) = pool.upgrade() {
                pool.h2.remove(&done);
            }
        });
        c
    }

    fn remove(&self, gone: &Arc<H2Conn>) {
        self.conns.rcu(|list| {
            list.iter()
                .filter(|c| !Arc::ptr_eq(c, gone))
                .cloned()
                .collect::<Vec<_>>()
        });
    }

    /// Forgets connections that closed (their drivers normally do it).
    pub fn sweep(&self) -> usize {
        let before = self.len();
        if self.conns.load().iter().any(|c| c.sender.is_closed()) {
            self.conns.rcu(|list| {
                list.iter()
                    .filter(|c| !c.sender.is_closed())
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
        before.saturating_sub(self.len())
    }
}

/// A connection that can tell the server's current stream limit.
pub trait MaxStreams {
    fn max_send_streams(&self) -> usize;
}

impl<T, E> MaxStreams for http2::Connection<T, UpstreamBody, E>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    E: hyper::rt::bounds::Http2ClientConnExec<UpstreamBody, T> + Unpin,
{
    fn max_send_streams(&self) -> usize {
        self.current_max_send_streams()
    }
}

/// Polls a connection and publishes the server's stream limit after
/// every poll, and on a timer: the connection is polled for our requests,
/// the server's SETTINGS may arrive between them. Often at first (SETTINGS
/// follow the handshake within a round trip), rarely later.
struct Drive<C> {
    conn: C,
    max: Arc<AtomicUsize>,
    tick: Pin<Box<tokio::time::Sleep>>,
    ticks: u32,
}

impl<C> Drive<C> {
    fn new(conn: C, max: Arc<AtomicUsize>) -> Self {
        Drive {
            conn,
            max,
            tick: Box::pin(tokio::time::sleep(SETTINGS_EARLY)),
            ticks: 0,
        }
    }
}

/// How often the stream limit is read in a connection's first second,
/// and after.
const SETTINGS_EARLY: Duration = Duration::from_millis(50);
const SETTINGS_LATE: Duration = Duration::from_secs(5);

impl<C> Future for Drive<C>
where
    C: MaxStreams + Future<Output = hyper::Result<()>> + Unpin,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.conn).poll(cx);
        while this.tick.as_mut().poll(cx).is_ready() {
            this.ticks += 1;
            let next = if this.ticks < 20 {
                SETTINGS_EARLY
            } else {
                SETTINGS_LATE
            };
            this.tick.as_mut().reset(tokio::time::Instant::now() + next);
        }
        // At least one stream: a server announcing 0 is draining, and
        // GOAWAY handles that. At most STREAMS_PER_CONNECTION: see there.
        let max = this
            .conn
            .max_send_streams()
            .clamp(1, STREAMS_PER_CONNECTION);
        this.max.store(max, Ordering::Relaxed);
        polled
    }
}
