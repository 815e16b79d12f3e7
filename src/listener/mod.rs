//! Traffic listeners: accept TCP connections and serve HTTP/1.1 and HTTP/2
//! (prior knowledge, or by ALPN over TLS: `tls.rs`) on them through
//! hyper-util's auto server, with upgrades. Also the connection tracker that
//! graceful shutdown waits on.

pub mod set;
mod tls;

use crate::gateway::Gateway;
use crate::proxy::{self, ConnInfo};
use crate::tls::TlsListener;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

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

/// A running accept loop.
pub struct ListenerHandle {
    pub name: Arc<str>,
    pub local_addr: SocketAddr,
    pub(crate) stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl ListenerHandle {
    /// Stops accepting; open connections are not touched.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Counts open client connections and tells them when to wind down.
#[derive(Debug)]
pub struct ConnTracker {
    active: AtomicUsize,
    idle: Notify,
    shutdown: watch::Sender<bool>,
}

impl Default for ConnTracker {
    fn default() -> Self {
        ConnTracker {
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            shutdown: watch::Sender::new(false),
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
    /// Asks every connection to finish its in-flight requests and close,
    /// then waits up to `timeout`. Returns the connections still open.
    pub async fn drain(&self, timeout: Duration) -> usize {
        let _ = self.shutdown.send(true);
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
}

/// The hyper server settings every traffic connection uses.
pub fn http_builder(gw: &Gateway) -> auto::Builder<TokioExecutor> {
    let snap = gw.snapshot();
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(snap.proxy.idle_timeout);
    b.http2().timer(TokioTimer::new());
    b
}

/// Starts the accept loop for `listener`; with `tls`, every connection is
/// a TLS handshake first and the certificate files are watched.
pub fn spawn(
    listener: TcpListener,
    name: Arc<str>,
    gw: Arc<Gateway>,
    tls: Option<Arc<TlsListener>>,
) -> std::io::Result<ListenerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    if let Some(t) = &tls {
        crate::tls::watch::spawn(t.clone(), stop.subscribe());
    }
    let task_name = name.clone();
    let stats = gw.metrics.listener(&name);
    let task_tls = tls;
    let task = tokio::spawn(async move {
        let mut generation = gw.generation();
        let mut builder = http_builder(&gw);
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = stopped.wait_for(|s| *s) => break,
            };
            if gw.generation() != generation {
                // A reload may have changed timeouts: new connections get them.
                generation = gw.generation();
                builder = http_builder(&gw);
            }
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let secure = task_tls.is_some();
                    let info = Arc::new(ConnInfo::new(peer, local_addr, stats.clone(), secure));
                    match &task_tls {
                        None => serve_connection(
                            TokioIo::new(stream),
                            info,
                            gw.clone(),
                            builder.clone(),
                        ),
                        Some(t) => tls::serve(stream, t.clone(), info, gw.clone(), builder.clone()),
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %task_name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(ListenerHandle {
        name,
        local_addr,
        stop,
        task,
    })
}

/// Serves one client connection until it closes or shutdown drains it.
pub fn serve_connection<I>(
    io: I,
    info: Arc<ConnInfo>,
    gw: Arc<Gateway>,
    builder: auto::Builder<TokioExecutor>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let guard = gw.connections.enter();
    tokio::spawn(run_connection(io, info, gw, builder, guard));
}

/// Serves HTTP on an open (and, for TLS, handshaken) connection; `guard`
/// counts it as open until it ends.
async fn run_connection<I>(
    io: I,
    info: Arc<ConnInfo>,
    gw: Arc<Gateway>,
    builder: auto::Builder<TokioExecutor>,
    guard: ConnGuard,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let _guard = guard;
    let _counted = info.stats.connection();
    let mut shutdown = gw.connections.subscribe();
    let svc_gw = gw.clone();
    let service = service_fn(move |req| proxy::handle(svc_gw.clone(), info.clone(), req));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("client connection ended: {e}");
            }
        }
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
