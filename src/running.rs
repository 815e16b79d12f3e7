//! Starting and stopping farmgate: binds the listeners of a snapshot, starts
//! the background tasks (health checks, pool sweeper, history tick, config
//! watcher, host-name re-resolution) and
//! shuts everything down gracefully. Binary, tests and benches start here.

use crate::config::Snapshot;
use crate::farm::StateRegistry;
use crate::gateway::Gateway;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

/// A started farmgate: its gateway and its background tasks.
pub struct Running {
    pub gateway: Arc<Gateway>,
    /// The background health task (probes, probation, minimum servers).
    pub health: crate::checks::supervisor::HealthHandle,
    watcher: Option<tokio::task::JoinHandle<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    history: tokio::task::JoinHandle<()>,
    /// Re-resolves DNS-named servers (`reload::watch_names`).
    names: tokio::task::JoinHandle<()>,
    cluster: crate::cluster::ClusterTasks,
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
        crate::admin::collect::register(&gateway);
        let weak = Arc::downgrade(&gateway);
        gateway.set_admin_starter(Box::new(move |tcp| match weak.upgrade() {
            Some(gw) => crate::admin::spawn(tcp, gw),
            None => Err(std::io::Error::other("the gateway has stopped")),
        }));
        gateway.reloads.mark_loaded_now();
        // A tier's drained servers are known before the first request.
        crate::cluster::join(&gateway).await;
        {
            let mut set = gateway.listeners.lock().await;
            let snap = gateway.snapshot();
            let prepared = set.prepare(&snap)?;
            let admin = |tcp| gateway.start_admin(tcp);
            set.commit(prepared, &snap, &gateway.serving, admin).await?;
            gateway.publish_listeners(&set);
        }
        let health = crate::checks::supervisor::spawn(&gateway);
        let sweeper = crate::proxy::pool::spawn_sweeper(Arc::downgrade(
            &gateway
                .registry
                .attached::<crate::proxy::pool::PoolRegistry>(),
        ));
        let history = spawn_history(Arc::downgrade(&gateway));
        let names = crate::reload::watch_names(Arc::downgrade(&gateway));
        let cluster = crate::cluster::spawn(&gateway);
        let watcher = path.map(|p| {
            gateway.set_config_path(p.clone());
            crate::reload::watch_file(gateway.clone(), p)
        });
        Ok(Running {
            gateway,
            health,
            watcher,
            sweeper,
            history,
            names,
            cluster,
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

    /// After a new process took over (binary upgrade): stops accepting and
    /// retires every connection without closing one a client may be sending
    /// on (`ConnTracker::retire`); returns once nothing is left, or at the
    /// later of the shutdown timeout (upgraded connections are closed then)
    /// and the client idle timeout (idle keep-alive connections close by
    /// themselves then).
    pub async fn retire(self) -> Retired {
        let started = std::time::Instant::now();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        {
            let listeners = self.gateway.listeners.lock().await;
            listeners.stop_traffic();
            listeners.stop_admin();
        }
        let conns = &self.gateway.connections;
        let tunnels = crate::proxy::upgrade::open_tunnels;
        let at_start = (conns.active(), tunnels());
        conns.retire();
        let snap = self.gateway.snapshot();
        let wait = snap
            .runtime
            .shutdown_timeout
            .max(snap.proxy.idle_timeout + Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + wait;
        while conns.active() + tunnels() > 0 && tokio::time::Instant::now() < deadline {
            // Connections wake this at once; tunnels are looked at 10 times a second.
            let step = (deadline - tokio::time::Instant::now()).min(Duration::from_millis(100));
            if conns.active() > 0 {
                conns.wait_closed(step).await;
            } else {
                // Only tunnels left: `wait_closed` would return at once, and
                // this loop would spin, starving the tunnels on this thread.
                tokio::time::sleep(step).await;
            }
        }
        let left = conns.drain(Duration::from_secs(1)).await + tunnels();
        self.health.stop();
        self.sweeper.abort();
        self.history.abort();
        self.names.abort();
        self.cluster.stop();
        Retired {
            connections: at_start.0,
            upgraded: at_start.1,
            left,
            took: started.elapsed(),
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `timeout`,
    /// then returns. Returns how many connections were still open.
    pub async fn shutdown(self, timeout: Duration) -> usize {
        self.gateway.begin_shutdown();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        let listeners = self.gateway.listeners.lock().await;
        listeners.stop_traffic();
        let left = self.gateway.connections.drain(timeout).await;
        self.health.stop();
        self.sweeper.abort();
        self.history.abort();
        self.names.abort();
        self.cluster.stop();
        crate::cluster::leave(&self.gateway).await;
        listeners.stop_admin();
        left
    }
}

/// What a retiring process finished (`Running::retire`).
#[derive(Debug, Clone, Copy)]
pub struct Retired {
    /// Client connections open when the new process took over.
    pub connections: usize,
    /// Upgraded (WebSocket, ...) connections open then.
    pub upgraded: usize,
    /// Still open at the deadline (closed by the exit).
    pub left: usize,
    pub took: Duration,
}

/// Starts the history tick (`history.rs`); it ends when the gateway is gone.
fn spawn_history(gw: Weak<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::history::INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(gw) = gw.upgrade() else { return };
            let snap = gw.snapshot();
            let reloads = (
                gw.reloads
                    .successes
                    .load(std::sync::atomic::Ordering::Relaxed),
                gw.reloads
                    .failures
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            gw.history.tick(&snap.farms, reloads, SystemTime::now());
        }
    })
}
