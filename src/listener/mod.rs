//! Traffic listeners: accept TCP connections and serve HTTP/1.1 and HTTP/2
//! (prior knowledge, or by ALPN over TLS: `tls.rs`) on them through
//! hyper-util's auto server, with upgrades. Also the connection tracker that
//! graceful shutdown waits on.
//!
//! Hostile clients are held off here (see `docs/hardening.md`): the
//! connection cap with eviction (`limit.rs`), the header and idle timeouts
//! and rapid-reset detection (`activity.rs`), the strict second reading of
//! HTTP/1 framing against request smuggling (`framing.rs`, fed by `io.rs`),
//! the refusal of what it flags (`service.rs`), and hyper's own HTTP/1 and
//! HTTP/2 limits (`http_builder`).

pub mod activity;
mod engine;
mod engine_body;
mod engine_write;
pub mod framing;
pub mod inherited;
mod io;
pub mod limit;
mod park;
pub mod preface;
pub mod proxy_protocol;
mod service;
pub mod set;
mod tls;
pub mod workers;

use crate::config::snapshot::{ClientLimits, Http1Server};
use crate::config::Snapshot;
use crate::metrics::listener::ClientTimeout;
use crate::metrics::{ListenerStats, Metrics};
use crate::request::{ConnInfo, Shared};
use crate::tls::{TlsListener, TlsRegistry};
use activity::{ConnActivity, Expiry};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use ipnet::IpNet;
use limit::{ConnSet, Slot};
use park::Parkable;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// What the listeners take from the running gateway, resolved once when it
/// is built (the accept loops call it `gw`): the request path's shared
/// state, the connection tracker, the counters, the TLS listener registry.
pub struct Serving {
    pub shared: Arc<Shared>,
    pub connections: Arc<ConnTracker>,
    pub metrics: Arc<Metrics>,
    pub tls: Arc<TlsRegistry>,
}

impl Serving {
    #[inline]
    fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    #[inline]
    fn generation(&self) -> u64 {
        self.shared.generation()
    }
}

/// Binds with SO_REUSEADDR and a deep backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Sets TCP_NODELAY on a listening socket, for the connections it accepts
/// to inherit (Linux copies it to each accepted socket): a setsockopt per
/// listener instead of one per connection, about a twelfth of the syscalls
/// of a request on a new connection. False: each connection sets its own
/// (another system, or a socket that refused it).
fn nodelay_inherited(listener: &TcpListener) -> bool {
    cfg!(target_os = "linux") && rustix::net::sockopt::set_tcp_nodelay(listener, true).is_ok()
}

/// A running accept loop.
pub struct ListenerHandle {
    pub name: Arc<str>,
    pub local_addr: SocketAddr,
    pub(crate) stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
    /// A second descriptor of the listening socket, for handing it to a new
    /// process (binary upgrade); closed by `stop`, so a stopped listener's
    /// port is free again once its accept loop ends.
    socket: Mutex<Option<std::os::fd::OwnedFd>>,
}

impl ListenerHandle {
    /// `listener` is the socket the accept loop `task` serves.
    pub fn new(
        name: Arc<str>,
        listener: &TcpListener,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    ) -> std::io::Result<ListenerHandle> {
        use std::os::fd::AsFd;
        Ok(ListenerHandle {
            name,
            local_addr: listener.local_addr()?,
            stop,
            task,
            socket: Mutex::new(Some(listener.as_fd().try_clone_to_owned()?)),
        })
    }

    /// Stops accepting; open connections are not touched.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        self.socket.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// A new descriptor of the listening socket; None once stopped.
    pub fn dup_socket(&self) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        socket.as_ref().map(|s| s.try_clone())
    }
}

/// Counts open client connections and tells them when to wind down.
#[derive(Debug)]
pub struct ConnTracker {
    active: AtomicUsize,
    idle: Notify,
    shutdown: watch::Sender<bool>,
    /// A new process took over (binary upgrade): see [`ConnTracker::retire`].
    retiring: watch::Sender<bool>,
    retiring_now: std::sync::atomic::AtomicBool,
    /// `shutdown` as one atomic, for the polls that run on every wake of
    /// a connection's task ([`Draining`]).
    draining_now: std::sync::atomic::AtomicBool,
    /// Each listener's open connections, by listener name.
    per_listener: Mutex<HashMap<Arc<str>, Arc<ConnSet>>>,
}

impl Default for ConnTracker {
    fn default() -> Self {
        ConnTracker {
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            shutdown: watch::Sender::new(false),
            retiring: watch::Sender::new(false),
            retiring_now: std::sync::atomic::AtomicBool::new(false),
            draining_now: std::sync::atomic::AtomicBool::new(false),
            per_listener: Mutex::default(),
        }
    }
}

/// Held by each connection task; counts it as open.
pub struct ConnGuard(Arc<ConnTracker>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ConnTracker {
    pub fn enter(self: &Arc<Self>) -> ConnGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.clone())
    }
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
    /// The open connections of the listener `name` (open count, evictions).
    pub fn listener(&self, name: &Arc<str>) -> Arc<ConnSet> {
        let mut map = self.per_listener.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.clone()).or_default().clone()
    }
    /// Winds connections down without closing one under a client that may
    /// be sending on it (binary upgrade; the new process accepts the next
    /// connections): HTTP/2 connections get GOAWAY and finish their streams;
    /// every HTTP/1 response from now on carries `Connection: close`, and an
    /// idle HTTP/1 connection stays open until its next request (served,
    /// then closed) or its idle timeout.
    pub fn retire(&self) {
        self.retiring_now.store(true, Ordering::Relaxed);
        let _ = self.retiring.send(true);
    }

    #[inline]
    pub fn is_retiring(&self) -> bool {
        self.retiring_now.load(Ordering::Relaxed)
    }

    /// Has shutdown asked connections to finish and close?
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining_now.load(Ordering::Acquire)
    }

    /// Resolves once shutdown asks connections to finish (see
    /// [`Draining`]); `wait` is a wait on [`ConnTracker::subscribe`].
    pub fn draining<'a, F: Future<Output = ()>>(&'a self, wait: Pin<&'a mut F>) -> Draining<'a, F> {
        Draining {
            flag: &self.draining_now,
            wait,
            registered: false,
        }
    }

    /// Waits until every connection has ended or `timeout` passed; returns
    /// the connections still open.
    pub async fn wait_closed(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.idle.notified();
            if self.active() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.active();
            }
        }
    }

    /// Asks every connection to finish its in-flight requests and close,
    /// then waits up to `timeout`. Returns the connections still open.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining_now.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        self.wait_closed(timeout).await
    }
}

/// A connection's wait for shutdown, polled on every wake of its task:
/// the watch is asked once (which registers the task's waker with it),
/// after that one atomic load answers; the watch's wake-up polls it again,
/// and the flag is set before the watch is sent.
pub struct Draining<'a, F> {
    flag: &'a std::sync::atomic::AtomicBool,
    wait: Pin<&'a mut F>,
    registered: bool,
}

impl<F: Future<Output = ()>> Future for Draining<'_, F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.flag.load(Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        if self.registered {
            return std::task::Poll::Pending;
        }
        self.registered = true;
        self.wait.as_mut().poll(cx)
    }
}

/// HTTP/2 streams a client may reset before the server accepted them;
/// beyond, the connection gets GOAWAY (h2's rapid reset defence).
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset because of client protocol errors before
/// the connection gets GOAWAY.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;

/// The hyper server settings every traffic connection uses.
pub fn http_builder(gw: &Serving) -> auto::Builder<TokioExecutor> {
    let limits = gw.snapshot().proxy.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // The header and idle timeouts are the connection watchdog's
        // (`activity.rs`): hyper's one timer would run across both.
        .header_read_timeout(None)
        // Too many header fields: 431.
        .max_headers(limits.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
    b
}

/// Starts the accept loop for `listener`; with `tls`, every connection is
/// a TLS handshake first and the certificate files are watched.
pub fn spawn(
    listener: TcpListener,
    name: Arc<str>,
    gw: Arc<Serving>,
    tls: Option<Arc<TlsListener>>,
) -> std::io::Result<ListenerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    if let Some(t) = &tls {
        crate::tls::watch::spawn(t.clone(), stop.subscribe());
        crate::tls::acme::manager::spawn(t.clone(), gw.tls.acme_tier.clone(), stop.subscribe());
    }
    let task_name = name.clone();
    let stats = gw.metrics.listener(&name);
    let task_tls = tls;
    let conns = gw.connections.listener(&name);
    let nodelay_each = !nodelay_inherited(&listener);
    let socket = std::sync::Arc::new(listener);
    let accepting = socket.clone();
    let task = tokio::spawn(async move {
        let listener = accepting;
        let mut generation = gw.generation();
        let mut builder = Arc::new(http_builder(&gw));
        // One wait for the stop for the whole loop: made and registered
        // afresh in two selects per accept, it cost ~350 instructions a
        // new connection.
        let mut stopping = std::pin::pin!(async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = stopping.as_mut() => break,
            };
            if gw.generation() != generation {
                // A reload may have changed timeouts: new connections get them.
                generation = gw.generation();
                builder = Arc::new(http_builder(&gw));
            }
            match accepted {
                Ok((stream, peer)) => {
                    let ConnSettings {
                        limits,
                        idle_timeout,
                        max,
                        proxied,
                        clients,
                        http1,
                    } = conn_settings(&gw, &task_name);
                    if let Some(trusted) = &proxied {
                        if !trusted.iter().any(|n| n.contains(&peer.ip())) {
                            // Only the balancers in front may connect here.
                            tracing::debug!(listener = %task_name, %peer, "closed: not a trusted PROXY protocol source");
                            continue;
                        }
                    }
                    // Without a PROXY header the client is known now: a
                    // refused one takes no place under the listener's cap.
                    let mut per_ip = None;
                    if proxied.is_none() && !clients.admit(&conns, peer, &mut per_ip) {
                        continue;
                    }
                    let mut activity = ConnActivity::new(limits.header_timeout, idle_timeout)
                        .with_io_timeouts(limits.body_timeout, limits.send_timeout);
                    if task_tls.is_none() {
                        activity = activity.with_park_after(park::PARK_AFTER);
                    }
                    let activity = Arc::new(activity);
                    // At the cap this evicts an idle connection, or waits
                    // (not accepting) until one ends.
                    let slot = tokio::select! {
                        s = conns.admit(activity.clone(), max) => s,
                        () = stopping.as_mut() => break,
                    };
                    if nodelay_each {
                        let _ = stream.set_nodelay(true);
                    }
                    let secure = task_tls.is_some();
                    let (tls, gw, builder, stats) =
                        (task_tls.clone(), gw.clone(), builder.clone(), stats.clone());
                    let conns = conns.clone();
                    let engine = http1 == Http1Server::Engine;
                    let max_head = limits.max_header_size;
                    // Served on the serving thread with the fewest connections.
                    workers::place(stream, move |stream, placed| {
                        let accepted = Accepted {
                            stream,
                            peer,
                            local: local_addr,
                            activity,
                            slot,
                            max_head,
                            engine,
                            per_ip,
                            placed,
                        };
                        if proxied.is_some() {
                            // The header is read in the connection's own task.
                            tokio::spawn(async move {
                                let timeout = limits.header_timeout;
                                if let Some(mut a) = accepted.behind_proxy(timeout).await {
                                    if clients.admit(&conns, a.peer, &mut a.per_ip) {
                                        a.serve(stats, secure, tls, gw, builder);
                                    }
                                }
                            });
                        } else {
                            accepted.serve(stats, secure, tls, gw, builder);
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %task_name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    ListenerHandle::new(name, &socket, stop, task)
}

/// The settings a new connection of a listener gets from the current
/// snapshot.
struct ConnSettings {
    limits: ClientLimits,
    idle_timeout: Duration,
    /// The listener's `max_connections`.
    max: usize,
    /// The trusted sources when it speaks the PROXY protocol.
    proxied: Option<Arc<[IpNet]>>,
    clients: ClientRules,
    /// `runtime.http1`.
    http1: Http1Server,
}

/// Who may connect: the listener's `access` lists and
/// `max_connections_per_ip`.
struct ClientRules {
    access: Option<Arc<crate::limits::AccessList>>,
    per_ip: Option<u32>,
}

fn conn_settings(gw: &Serving, name: &str) -> ConnSettings {
    let snap = gw.snapshot();
    let spec = snap.listeners.iter().find(|l| &*l.name == name);
    ConnSettings {
        limits: snap.proxy.limits,
        idle_timeout: snap.proxy.idle_timeout,
        max: spec.map_or(ClientLimits::DEFAULT_MAX_CONNECTIONS, |l| l.max_connections),
        proxied: spec.and_then(|l| l.proxy_protocol.clone()),
        clients: ClientRules {
            access: spec.and_then(|l| l.access.clone()),
            per_ip: spec.and_then(|l| l.max_connections_per_ip),
        },
        http1: snap.runtime.http1,
    }
}

/// A connection just accepted, before its `ConnInfo` is known.
struct Accepted {
    stream: tokio::net::TcpStream,
    /// The TCP peer; with the PROXY protocol, the client it names.
    peer: SocketAddr,
    local: SocketAddr,
    activity: Arc<ConnActivity>,
    slot: Slot,
    max_head: usize,
    /// `runtime.http1: engine`.
    engine: bool,
    /// Its place under `max_connections_per_ip`.
    per_ip: Option<crate::limits::InFlightGuard>,
    /// Its place on a serving thread (`workers.rs`).
    placed: Option<workers::Placed>,
}

impl ClientRules {
    /// Checks the client `peer` (the PROXY header's source, when there is
    /// one) against the listener's access lists and per-address cap; false:
    /// the connection is closed at once, before a byte is answered. Its
    /// place under the cap goes to `held`.
    fn admit(
        &self,
        conns: &ConnSet,
        peer: SocketAddr,
        held: &mut Option<crate::limits::InFlightGuard>,
    ) -> bool {
        if self.access.is_none() && self.per_ip.is_none() {
            return true;
        }
        let ip = crate::ground::net::canonical_ip(peer.ip());
        match conns.admit_client(ip, self.access.as_deref(), self.per_ip) {
            Ok(guard) => {
                *held = guard;
                true
            }
            Err(why) => {
                tracing::debug!(%peer, "closed: {why}");
                false
            }
        }
    }
}

impl Accepted {
    /// Reads the PROXY header (within the header timeout); the peer becomes
    /// the client it names. None: refused, the connection closes.
    async fn behind_proxy(mut self, timeout: Duration) -> Option<Accepted> {
        let read = proxy_protocol::read(&mut self.stream);
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(proxy_protocol::Header::Proxied {
                source,
                destination,
            })) => {
                self.peer = source;
                self.local = destination;
                Some(self)
            }
            Ok(Ok(proxy_protocol::Header::Local)) => Some(self),
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, "closed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "closed: no PROXY header within {timeout:?}");
                None
            }
        }
    }

    fn serve(
        self,
        stats: Arc<ListenerStats>,
        secure: bool,
        tls: Option<Arc<TlsListener>>,
        gw: Arc<Serving>,
        builder: Arc<auto::Builder<TokioExecutor>>,
    ) {
        let info = Arc::new(ConnInfo::new(self.peer, self.local, stats, secure));
        let conn = Conn {
            info,
            activity: self.activity,
            max_head: self.max_head,
            slot: self.slot,
            engine: self.engine,
            per_ip: self.per_ip,
            placed: self.placed,
        };
        match tls {
            None => serve_connection(self.stream, conn, gw, builder),
            Some(t) => tls::serve(self.stream, t, conn, gw, builder),
        }
    }
}

/// Answers a request head that did not arrive within `header_timeout`
/// (RFC 9110 §15.5.9) and closes. Bounded: a client that reads nothing
/// does not hold the connection.
async fn request_timeout<S: AsyncWrite + Unpin>(mut stream: S) {
    const RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
        Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\n\r\n\
        408 Request Timeout\n";
    let write = async {
        stream.write_all(RESPONSE).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// An accepted client connection and what watches over it.
pub(crate) struct Conn {
    info: Arc<ConnInfo>,
    activity: Arc<ConnActivity>,
    max_head: usize,
    /// Its place under the listener's `max_connections`.
    slot: Slot,
    /// HTTP/1 is served by the engine (`engine.rs`), not hyper.
    engine: bool,
    /// Its place under `max_connections_per_ip`.
    per_ip: Option<crate::limits::InFlightGuard>,
    /// Its place on a serving thread, given back when it ends.
    placed: Option<workers::Placed>,
}

/// Serves one client connection until it closes or shutdown drains it.
fn serve_connection<S>(
    stream: S,
    conn: Conn,
    gw: Arc<Serving>,
    builder: Arc<auto::Builder<TokioExecutor>>,
) where
    S: AsyncRead + AsyncWrite + Parkable + Unpin + Send + Sync + 'static,
{
    let guard = gw.connections.enter();
    if conn.engine {
        tokio::spawn(engine::run(stream, conn, gw, builder, guard));
    } else {
        tokio::spawn(run_connection(stream, conn, gw, builder, guard));
    }
}

/// Serves HTTP on an open (and, for TLS, handshaken) connection; `guard`
/// counts it as open until it ends. The connection ends when the client
/// closes it, at shutdown (gracefully), at the idle timeout (gracefully),
/// or at once when a request head is late (408 once part of it arrived),
/// when a request body or a response write stalls on the client, when it
/// is evicted, or when the client cancels most of its requests. An idle plain HTTP/1 connection
/// parks in between (`park.rs`).
async fn run_connection<S>(
    stream: S,
    conn: Conn,
    gw: Arc<Serving>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    guard: ConnGuard,
) where
    S: AsyncRead + AsyncWrite + Parkable + Unpin + Send + 'static,
{
    let _guard = guard;
    let Conn {
        info,
        activity,
        max_head,
        slot,
        engine: _,
        per_ip,
        placed,
    } = conn;
    let _slot = (slot, per_ip, placed);
    let _counted = info.stats.connection();
    let mut shutdown = gw.connections.subscribe();
    let mut retiring = gw.connections.retiring.subscribe();
    // The hand-back also gives the socket back for a 408.
    let handback: Option<io::Handback<S>> = Some(Arc::default());
    let framing = Some(Box::new(framing::Framing::new(max_head)));
    let mut io = io::ScannedIo::resume(stream, framing, activity.clone(), handback.clone());
    loop {
        let (svc_gw, svc_info, svc_activity) = (gw.shared.clone(), info.clone(), activity.clone());
        let svc_conns = gw.connections.clone();
        let service = service_fn(move |req| {
            let last = svc_conns.is_retiring();
            service::serve(
                svc_gw.clone(),
                svc_info.clone(),
                svc_activity.clone(),
                last,
                req,
            )
        });
        // Boxed, so that a parked connection does not hold its space.
        let mut conn = Box::pin(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
        // Until hyper's connection ends; `parked`: it ended to park (its
        // socket is then in the hand-back).
        let mut draining = false;
        let mut watch_idle = true;
        let mut parking = false;
        let parked = loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!("client connection ended: {e}");
                    }
                    break parking && !draining;
                }
                _ = shutdown.wait_for(|s| *s), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                // HTTP/2 can say GOAWAY without losing a stream; HTTP/1
                // closes after its next response (`service.rs`).
                _ = retiring.wait_for(|r| *r), if !draining && activity.is_http2() => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                why = activity.expired(watch_idle && !parking) => match why {
                    Expiry::Idle => {
                        conn.as_mut().graceful_shutdown();
                        watch_idle = false;
                    }
                    Expiry::Park if activity.can_park() => {
                        // hyper closes its idle connection, the socket stays.
                        activity.set_parking(true);
                        conn.as_mut().graceful_shutdown();
                        parking = true;
                    }
                    Expiry::Park => activity.skip_park(),
                    Expiry::Header if activity.head_started() => {
                        // Take the socket back from hyper to answer 408.
                        info.stats.count_timeout(ClientTimeout::Header);
                        activity.set_parking(true);
                        break true;
                    }
                    why => {
                        tracing::debug!("closing client connection: {why:?}");
                        match why {
                            Expiry::Body => info.stats.count_timeout(ClientTimeout::Body),
                            Expiry::Send => info.stats.count_timeout(ClientTimeout::Send),
                            _ => {}
                        }
                        break false;
                    }
                }
            }
        };
        drop(conn);
        activity.set_parking(false);
        let resumed = match handback.as_ref() {
            Some(h) if parked => h.lock().unwrap_or_else(|p| p.into_inner()).take(),
            _ => None,
        };
        let Some((stream, framing)) = resumed else {
            break;
        };
        if activity.head_started() {
            // Parked for the 408 above: answer and close.
            info.stats.codes.inc(408);
            request_timeout(stream).await;
            break;
        }
        // Parked: the socket, the scanner and the watchdog, nothing else.
        let woken = wait_parked(&stream, &info, &activity, &mut shutdown).await;
        if !woken {
            break;
        }
        io = io::ScannedIo::resume(stream, framing, activity.clone(), handback.clone());
    }
    activity.set_done();
}

/// Waits, parked, for the client's next bytes (`true`), or until shutdown,
/// the idle timeout or eviction ends the connection (`false`); counted in
/// `connections_parked` meanwhile. Both HTTP/1 loops park through here.
pub(super) async fn wait_parked<S: Parkable>(
    stream: &S,
    info: &ConnInfo,
    activity: &ConnActivity,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    info.stats
        .connections_parked
        .fetch_add(1, Ordering::Relaxed);
    let woken = tokio::select! {
        r = stream.readable() => r.is_ok(),
        _ = shutdown.wait_for(|s| *s) => false,
        // The idle timeout, or eviction: nothing is in flight, close.
        _ = activity.expired(true) => false,
    };
    info.stats
        .connections_parked
        .fetch_sub(1, Ordering::Relaxed);
    woken
}

#[cfg(test)]
mod tests {
    use super::{bind, nodelay_inherited};

    /// The accept loop sets no TCP_NODELAY of its own where the listener's
    /// is inherited: without it, a response written in two parts waits
    /// for the client's delayed ACK (~40 ms).
    #[tokio::test]
    async fn accepted_connections_inherit_the_listeners_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(nodelay_inherited(&listener), "TCP_NODELAY on the listener");
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());

        let plain = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = tokio::net::TcpStream::connect(plain.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = plain.accept().await.unwrap();
        assert!(
            !accepted.nodelay().unwrap(),
            "off unless the listener has it"
        );
    }
}
