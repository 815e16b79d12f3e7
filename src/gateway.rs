//! The running proxy: the current runtime snapshot (one `ArcSwap`), the
//! long-lived server state, the pooled backend client, the listeners, and
//! graceful shutdown. Binary, tests and benches all start farmgate here.

use crate::config::Snapshot;
use crate::farm::StateRegistry;
use crate::listener::{self, ConnTracker, ListenerHandle};
use crate::log::access::AccessLog;
use crate::proxy::body::UpstreamBody;
use crate::proxy::connector::Connector;
use crate::tls::{TlsListener, TlsRegistry};
use arc_swap::{ArcSwap, ArcSwapOption};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub type UpstreamClient = Client<Connector, UpstreamBody>;

/// State shared by every connection and background task.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub registry: Arc<StateRegistry>,
    pub client: UpstreamClient,
    connector: Connector,
    access_log: ArcSwapOption<AccessLog>,
    shutting_down: AtomicBool,
    pub connections: Arc<ConnTracker>,
    /// Every running TLS listener: its settings, certificates and counters.
    pub tls: TlsRegistry,
}

impl Gateway {
    pub fn new(snapshot: Snapshot, registry: Arc<StateRegistry>) -> std::io::Result<Arc<Self>> {
        let connector =
            Connector::new(snapshot.proxy.connect_timeout, snapshot.backend_tls.clone());
        snapshot.backend_tls.warn_insecure();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector.clone());
        let access_log =
            AccessLog::start(snapshot.log.access, snapshot.log.access_file.as_deref())?;
        Ok(Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            registry,
            client,
            connector,
            access_log: ArcSwapOption::new(access_log),
            shutting_down: AtomicBool::new(false),
            connections: Arc::new(ConnTracker::default()),
            tls: TlsRegistry::default(),
        }))
    }

    /// The snapshot a request uses from start to end.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Installs a new snapshot; requests in flight keep the one they loaded.
    pub fn install(&self, snapshot: Snapshot) {
        self.connector.set_timeout(snapshot.proxy.connect_timeout);
        self.connector.set_tls(snapshot.backend_tls.clone());
        snapshot.backend_tls.warn_insecure();
        self.snapshot.store(Arc::new(snapshot));
        self.registry.prune();
    }

    #[inline]
    pub fn access_log(&self) -> Option<Arc<AccessLog>> {
        self.access_log.load_full()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// A started farmgate: its gateway and where it listens.
pub struct Running {
    pub gateway: Arc<Gateway>,
    pub listeners: Vec<ListenerHandle>,
    pub admin: Option<ListenerHandle>,
}

impl Running {
    /// Binds every listener of the snapshot and starts serving.
    pub async fn start(
        snapshot: Snapshot,
        registry: Arc<StateRegistry>,
    ) -> std::io::Result<Running> {
        let specs = snapshot.listeners.clone();
        let admin_spec = snapshot.admin.clone();
        let gateway = Gateway::new(snapshot, registry)?;
        let mut listeners = Vec::new();
        for spec in &specs {
            let tcp = listener::bind(spec.bind).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {} ({}): {e}", spec.bind, spec.name),
                )
            })?;
            let tls = match &spec.tls {
                None => None,
                Some(t) => {
                    let tls = TlsListener::new(spec.name.clone(), t.clone()).map_err(|e| {
                        std::io::Error::other(format!("TLS listener {}: {e}", spec.name))
                    })?;
                    gateway.tls.register(tls.clone());
                    tls.log_certificates();
                    Some(tls)
                }
            };
            listeners.push(listener::spawn(
                tcp,
                spec.name.clone(),
                gateway.clone(),
                tls,
            )?);
        }
        let admin = if admin_spec.enabled {
            let tcp = listener::bind(admin_spec.bind).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {} (admin): {e}", admin_spec.bind),
                )
            })?;
            Some(crate::admin::spawn(tcp, gateway.clone())?)
        } else {
            None
        };
        Ok(Running {
            gateway,
            listeners,
            admin,
        })
    }

    /// The bound address of the listener named `name` (or its bind text).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| &*l.name == name)
            .map(|l| l.local_addr)
    }

    /// The first traffic listener's bound address.
    pub fn first_addr(&self) -> SocketAddr {
        self.listeners[0].local_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr)
    }

    /// Stops accepting, lets in-flight requests finish for up to `timeout`,
    /// then returns. Returns how many connections were still open.
    pub async fn shutdown(self, timeout: Duration) -> usize {
        self.gateway.shutting_down.store(true, Ordering::Relaxed);
        for l in &self.listeners {
            l.stop();
        }
        let left = self.gateway.connections.drain(timeout).await;
        if let Some(a) = &self.admin {
            a.stop();
        }
        left
    }
}
