//! The running proxy: the current runtime snapshot (one `ArcSwap`), the
//! long-lived server state, the backend connection pools, the listeners, and
//! graceful shutdown. Binary, tests and benches all start farmgate here.

use crate::config::Snapshot;
use crate::farm::StateRegistry;
use crate::listener::set::{BoundListener, ListenerSet};
use crate::listener::ConnTracker;
use crate::log::access::AccessLog;
use crate::metrics::Metrics;
use crate::proxy::connector::Connector;
use crate::proxy::upstream::Upstream;
use crate::reload::ReloadStats;
use crate::tls::TlsRegistry;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// State shared by every connection and background task.
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    pub registry: Arc<StateRegistry>,
    /// Sends requests to backends over pooled connections.
    pub upstream: Upstream,
    connector: Connector,
    access_log: ArcSwapOption<AccessLog>,
    shutting_down: AtomicBool,
    pub connections: Arc<ConnTracker>,
    /// Listener and reload statistics and the Prometheus registry.
    pub metrics: Metrics,
    /// Wakes the health task (a new snapshot, a changed server).
    pub(crate) health_wake: Arc<tokio::sync::Notify>,
    /// Every running TLS listener: its settings, certificates and counters.
    pub tls: TlsRegistry,
    /// The running listeners; locked by start, reload and shutdown only.
    pub(crate) listeners: tokio::sync::Mutex<ListenerSet>,
    bound: ArcSwap<Bound>,
    /// Bumped by every `install`, so long-lived loops notice new settings.
    generation: AtomicU64,
    config_path: OnceLock<PathBuf>,
    pub reloads: ReloadStats,
}

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
        Ok(Arc::new_cyclic(|me| Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            registry,
            upstream,
            connector,
            access_log: ArcSwapOption::new(access_log),
            shutting_down: AtomicBool::new(false),
            connections: Arc::new(ConnTracker::default()),
            metrics: Metrics::new(me.clone()),
            health_wake: Arc::new(tokio::sync::Notify::new()),
            tls: TlsRegistry::default(),
            listeners: tokio::sync::Mutex::new(ListenerSet::default()),
            bound: ArcSwap::from_pointee(Bound::default()),
            generation: AtomicU64::new(0),
            config_path: OnceLock::new(),
            reloads: ReloadStats::default(),
        }))
    }

    /// The snapshot a request uses from start to end.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Installs a new snapshot; requests in flight keep the one they loaded.
    pub fn install(&self, snapshot: Snapshot) {
        let old = self.snapshot();
        if !AccessLog::same(&old.log, &snapshot.log) {
            match AccessLog::start(&snapshot.log) {
                Ok(log) => self.access_log.store(log),
                Err(e) => tracing::error!("access log not changed: {e}"),
            }
        }
        self.connector.set_timeout(snapshot.proxy.connect_timeout);
        self.connector.set_tls(snapshot.backend_tls.clone());
        snapshot.backend_tls.warn_insecure();
        self.snapshot.store(Arc::new(snapshot));
        self.registry.prune();
        self.generation.fetch_add(1, Ordering::Release);
        self.health_wake.notify_one();
    }

    /// Changes with every installed snapshot.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
        self.access_log.load_full()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// A started farmgate: its gateway and its background tasks.
pub struct Running {
    pub gateway: Arc<Gateway>,
    /// The background health task (probes, probation, minimum servers).
    pub health: crate::health::HealthHandle,
    watcher: Option<tokio::task::JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    history: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Binds every listener of the snapshot and starts serving.
    pub async fn start(
        snapshot: Snapshot,
        registry: Arc<StateRegistry>,
    ) -> std::io::Result<Running> {
        Self::start_inner(snapshot, registry, None).await
    }

    /// Like `start`, and reloads when the file at `path` changes (and on
    /// `POST /api/reload`).
    pub async fn start_watching(
        snapshot: Snapshot,
        registry: Arc<StateRegistry>,
        path: PathBuf,
    ) -> std::io::Result<Running> {
        Self::start_inner(snapshot, registry, Some(path)).await
    }

    async fn start_inner(
        snapshot: Snapshot,
        registry: Arc<StateRegistry>,
        path: Option<PathBuf>,
    ) -> std::io::Result<Running> {
        let gateway = Gateway::new(snapshot, registry)?;
        gateway.reloads.mark_loaded_now();
        {
            let mut set = gateway.listeners.lock().await;
            let snap = gateway.snapshot();
            let prepared = set.prepare(&snap)?;
            set.commit(prepared, &snap, &gateway).await?;
            gateway.publish_listeners(&set);
        }
        let health = crate::health::supervisor::spawn(&gateway);
        let sweeper = crate::proxy::pool::spawn_sweeper(Arc::downgrade(&gateway.registry.pools));
        let history = crate::metrics::history::spawn(Arc::downgrade(&gateway));
        let watcher = path.map(|p| {
            let _ = gateway.config_path.set(p.clone());
            crate::reload::watch_file(gateway.clone(), p)
        });
        Ok(Running {
            gateway,
            health,
            watcher,
            sweeper,
            history,
        })
    }

    /// The bound address of the listener named `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.gateway
            .bound_listeners()
            .iter()
            .find(|l| &*l.name == name)
            .map(|l| l.addr)
    }

    /// The first traffic listener's bound address.
    pub fn first_addr(&self) -> SocketAddr {
        self.gateway.bound_listeners()[0].addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.gateway.admin_addr()
    }

    /// Stops accepting, lets in-flight requests finish for up to `timeout`,
    /// then returns. Returns how many connections were still open.
    pub async fn shutdown(self, timeout: Duration) -> usize {
        self.gateway.shutting_down.store(true, Ordering::Relaxed);
        if let Some(w) = &self.watcher {
            w.abort();
        }
        let listeners = self.gateway.listeners.lock().await;
        listeners.stop_traffic();
        let left = self.gateway.connections.drain(timeout).await;
        self.health.stop();
        self.sweeper.abort();
        self.history.abort();
        listeners.stop_admin();
        left
    }
}
