//! The running proxy's state: the current runtime snapshot (one `ArcSwap`),
//! the long-lived server state, the backend connection pools, the listeners.
//! Starting and stopping it is `running.rs`, one layer up.

use crate::config::Snapshot;
use crate::farm::StateRegistry;
use crate::history::History;
use crate::listener::set::{BoundListener, ListenerSet};
use crate::listener::{ConnTracker, ListenerHandle, Serving};
use crate::log::access::AccessLog;
use crate::metrics::reload::ReloadStats;
use crate::metrics::Metrics;
use crate::proxy::connector::Connector;
use crate::proxy::upstream::Upstream;
use crate::request::Shared;
use crate::tls::TlsRegistry;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// State shared by every connection and background task.
pub struct Gateway {
    /// What the listeners and the request path take from here, resolved
    /// once: the snapshot, the upstream, the access log and the rest.
    pub serving: Arc<Serving>,
    pub registry: Arc<StateRegistry>,
    connector: Connector,
    shutting_down: AtomicBool,
    pub connections: Arc<ConnTracker>,
    /// Listener and reload statistics and the Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Wakes the health task (a new snapshot, a changed server).
    pub(crate) health_wake: Arc<tokio::sync::Notify>,
    /// Every running TLS listener: its settings, certificates and counters.
    pub tls: Arc<TlsRegistry>,
    /// The running listeners; locked by start, reload and shutdown only.
    pub(crate) listeners: tokio::sync::Mutex<ListenerSet>,
    bound: ArcSwap<Bound>,
    config_path: OnceLock<PathBuf>,
    /// Starts the admin server on a socket; set once at start by
    /// `running.rs` (the admin API sits above the gateway).
    admin_starter: OnceLock<AdminStarter>,
    pub reloads: ReloadStats,
    /// The last minutes of every farm and server, for the status page.
    pub history: History,
    /// Binary upgrade: how to start again, and whether a new process took over.
    pub upgrade: crate::upgrade::Upgrader,
}

/// How the admin server is started on a bound socket.
pub type AdminStarter =
    Box<dyn Fn(tokio::net::TcpListener) -> std::io::Result<ListenerHandle> + Send + Sync>;

/// Where the listeners run now.
#[derive(Debug, Default)]
struct Bound {
    traffic: Vec<BoundListener>,
    admin: Option<SocketAddr>,
}

impl Gateway {
    pub fn new(snapshot: Snapshot, registry: Arc<StateRegistry>) -> std::io::Result<Arc<Self>> {
        let connector =
            Connector::new(snapshot.proxy.connect_timeout, snapshot.backend_tls.clone());
        snapshot.backend_tls.warn_insecure();
        let upstream = Upstream::new(connector.clone());
        let access_log = AccessLog::start(&snapshot.log)?;
        let connections = Arc::new(ConnTracker::default());
        let metrics = Arc::new(Metrics::new());
        let tls = Arc::new(TlsRegistry::default());
        let export = snapshot.trace.as_ref().and_then(|t| t.export.clone());
        let shared = Arc::new(Shared::new(snapshot, upstream, access_log));
        shared.set_span_export(export.as_ref());
        let serving = Arc::new(Serving {
            shared,
            connections: connections.clone(),
            metrics: metrics.clone(),
            tls: tls.clone(),
        });
        Ok(Arc::new(Gateway {
            serving,
            registry,
            connector,
            shutting_down: AtomicBool::new(false),
            connections,
            metrics,
            health_wake: Arc::new(tokio::sync::Notify::new()),
            tls,
            listeners: tokio::sync::Mutex::new(ListenerSet::default()),
            bound: ArcSwap::from_pointee(Bound::default()),
            config_path: OnceLock::new(),
            admin_starter: OnceLock::new(),
            reloads: ReloadStats::default(),
            history: History::default(),
            upgrade: Default::default(),
        }))
    }

    /// The snapshot a request uses from start to end.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.serving.shared.snapshot()
    }

    /// Installs a new snapshot; requests in flight keep the one they loaded.
    pub fn install(&self, snapshot: Snapshot) {
        let old = self.snapshot();
        if !AccessLog::same(&old.log, &snapshot.log) {
            match AccessLog::start(&snapshot.log) {
                Ok(log) => self.serving.shared.set_access_log(log),
                Err(e) => tracing::error!("access log not changed: {e}"),
            }
        }
        let export = snapshot.trace.as_ref().and_then(|t| t.export.as_ref());
        self.serving.shared.set_span_export(export);
        self.connector.set_timeout(snapshot.proxy.connect_timeout);
        self.connector.set_tls(snapshot.backend_tls.clone());
        snapshot.backend_tls.warn_insecure();
        self.serving.shared.store(Arc::new(snapshot));
        self.registry.prune();
        self.health_wake.notify_one();
    }

    /// Changes with every installed snapshot.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.serving.shared.generation()
    }

    /// The config file this gateway reloads from (none for the demo).
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_path.get().map(PathBuf::as_path)
    }

    /// The traffic listeners as they run now, in config order.
    pub fn bound_listeners(&self) -> Vec<BoundListener> {
        self.bound.load().traffic.clone()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.bound.load().admin
    }

    pub(crate) fn publish_listeners(&self, set: &ListenerSet) {
        self.bound.store(Arc::new(Bound {
            traffic: set.bound(),
            admin: set.admin_addr(),
        }));
    }

    /// How backends are reached (plain or TLS, current settings); health
    /// probes open their own connections with it, outside the pool.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    #[inline]
    pub fn access_log(&self) -> Option<Arc<AccessLog>> {
        self.serving.shared.access_log()
    }

    /// Reloads read this file from now on.
    pub(crate) fn set_config_path(&self, path: PathBuf) {
        let _ = self.config_path.set(path);
    }

    /// Sets how the admin server starts (once, at start).
    pub(crate) fn set_admin_starter(&self, start: AdminStarter) {
        let _ = self.admin_starter.set(start);
    }

    /// Starts the admin server on `tcp` (start-up, or a reload that moved it).
    pub fn start_admin(&self, tcp: tokio::net::TcpListener) -> std::io::Result<ListenerHandle> {
        match self.admin_starter.get() {
            Some(start) => start(tcp),
            None => Err(std::io::Error::other(
                "the admin API is not part of this gateway",
            )),
        }
    }

    /// Marks the gateway as going down (reload watchers stop).
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
