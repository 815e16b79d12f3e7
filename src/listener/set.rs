//! The set of running listeners (traffic and admin), and how a new snapshot
//! changes it. A listener is identified by its bind address, name and
//! whether it terminates TLS: an unchanged one keeps its socket and its
//! connections (TLS settings and certificates are re-applied in place), a new
//! one starts, a removed one stops accepting while its open connections
//! finish. Applying is two-phase so that a bind that fails (port in use)
//! refuses the whole reload before anything changed.

use super::Serving;
use super::{bind, spawn, ListenerHandle};
use crate::config::snapshot::{AdminSpec, ListenerSpec};
use crate::config::Snapshot;
use crate::tls::TlsListener;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the outside sees of a running listener.
#[derive(Debug, Clone)]
pub struct BoundListener {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub tls: bool,
}

struct Entry {
    /// The address as configured (port 0 stays 0), its identity.
    bind: SocketAddr,
    name: Arc<str>,
    tls: Option<Arc<TlsListener>>,
    handle: ListenerHandle,
}

impl Entry {
    fn is(&self, spec: &ListenerSpec) -> bool {
        self.bind == spec.bind && self.name == spec.name && self.tls.is_some() == spec.tls.is_some()
    }
}

struct AdminEntry {
    bind: SocketAddr,
    handle: ListenerHandle,
}

/// The running listeners. Touched at start, reload and shutdown only.
#[derive(Default)]
pub struct ListenerSet {
    traffic: Vec<Entry>,
    admin: Option<AdminEntry>,
}

/// Sockets bound for a snapshot, not yet serving.
pub struct Prepared {
    traffic: Vec<(usize, TcpListener)>,
    admin: Option<TcpListener>,
}

fn bind_named(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    if let Some(socket) = super::inherited::take(addr, what) {
        socket.set_nonblocking(true)?;
        return TcpListener::from_std(socket);
    }
    bind(addr).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
    })
}

impl ListenerSet {
    /// Binds the sockets `snap` needs that are not open yet. Addresses an
    /// outgoing listener still holds are bound later, in `commit`.
    pub fn prepare(&self, snap: &Snapshot) -> std::io::Result<Prepared> {
        let mut traffic = Vec::new();
        for (i, spec) in snap.listeners.iter().enumerate() {
            if self.traffic.iter().any(|e| e.is(spec)) {
                continue;
            }
            let held = spec.bind.port() != 0 && self.traffic.iter().any(|e| e.bind == spec.bind);
            if !held {
                traffic.push((i, bind_named(spec.bind, &spec.name)?));
            }
        }
        let admin = match (&self.admin, &snap.admin) {
            (_, AdminSpec { enabled: false, .. }) => None,
            (Some(a), spec) if a.bind == spec.bind => None,
            (_, spec) => Some(bind_named(spec.bind, "admin")?),
        };
        Ok(Prepared { traffic, admin })
    }

    /// Makes the running set match `snap` (already installed in `gw`);
    /// `admin` starts the admin server on its socket (the admin API sits
    /// above the listeners). Errors here are reported; what could be
    /// applied stays applied.
    pub async fn commit(
        &mut self,
        mut prepared: Prepared,
        snap: &Snapshot,
        gw: &Arc<Serving>,
        admin: impl FnOnce(TcpListener) -> std::io::Result<ListenerHandle>,
    ) -> std::io::Result<()> {
        let mut result = Ok(());
        // Stop what the new snapshot does not have; wait for the accept loops
        // whose address a new listener needs.
        let (keep, gone): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.traffic)
            .into_iter()
            .partition(|e| snap.listeners.iter().any(|s| e.is(s)));
        for e in gone {
            e.handle.stop();
            if e.tls.is_some() {
                gw.tls.unregister(&e.name);
            }
            tracing::info!(listener = %e.name, "listener {} stops accepting; its connections finish", e.handle.local_addr);
            if snap.listeners.iter().any(|s| s.bind == e.bind) {
                let _ = e.handle.task.await;
            }
        }
        self.traffic = keep;
        for (i, spec) in snap.listeners.iter().enumerate() {
            if let Some(e) = self.traffic.iter().find(|e| e.is(spec)) {
                if let (Some(tls), Some(new)) = (&e.tls, &spec.tls) {
                    if let Err(err) = tls.apply(new.clone()) {
                        result = Err(std::io::Error::other(format!(
                            "TLS listener {}: {err}",
                            spec.name
                        )));
                    }
                }
                continue;
            }
            let tcp = match prepared.traffic.iter().position(|(j, _)| *j == i) {
                Some(p) => prepared.traffic.swap_remove(p).1,
                None => match bind_named(spec.bind, &spec.name) {
                    Ok(t) => t,
                    Err(err) => {
                        result = Err(err);
                        continue;
                    }
                },
            };
            match start_one(tcp, spec, gw) {
                Ok(entry) => self.traffic.push(entry),
                Err(err) => result = Err(err),
            }
        }
        // Keep the configured order, so "the first listener" means the same.
        self.traffic
            .sort_by_key(|e| snap.listeners.iter().position(|s| e.is(s)));

        match (prepared.admin.take(), snap.admin.enabled) {
            (Some(tcp), true) => {
                if let Some(old) = self.admin.take() {
                    old.handle.stop();
                }
                let handle = admin(tcp)?;
                tracing::info!("admin listening on http://{}", handle.local_addr);
                self.admin = Some(AdminEntry {
                    bind: snap.admin.bind,
                    handle,
                });
            }
            (_, false) => {
                if let Some(old) = self.admin.take() {
                    old.handle.stop();
                }
            }
            (None, true) => {}
        }
        result
    }

    /// The listeners as they run now, in config order.
    pub fn bound(&self) -> Vec<BoundListener> {
        self.traffic
            .iter()
            .map(|e| BoundListener {
                name: e.name.clone(),
                addr: e.handle.local_addr,
                tls: e.tls.is_some(),
            })
            .collect()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.handle.local_addr)
    }

    /// A new descriptor of every listening socket with its listener name
    /// (`admin` for the admin listener) and configured address: what a
    /// binary upgrade hands to the new process.
    pub fn sockets(&self) -> std::io::Result<Vec<(String, SocketAddr, std::os::fd::OwnedFd)>> {
        let traffic = self.traffic.iter().map(|e| (&*e.name, e.bind, &e.handle));
        let admin = self.admin.iter().map(|a| ("admin", a.bind, &a.handle));
        traffic
            .chain(admin)
            .filter_map(|(name, bind, handle)| {
                let fd = handle.dup_socket()?;
                Some(fd.map(|fd| (name.to_string(), bind, fd)))
            })
            .collect()
    }

    /// Stops accepting on every traffic listener (shutdown).
    pub fn stop_traffic(&self) {
        for e in &self.traffic {
            e.handle.stop();
        }
    }

    pub fn stop_admin(&self) {
        if let Some(a) = &self.admin {
            a.handle.stop();
        }
    }
}

fn start_one(tcp: TcpListener, spec: &ListenerSpec, gw: &Arc<Serving>) -> std::io::Result<Entry> {
    let tls = match &spec.tls {
        None => None,
        Some(t) => {
            let tls = TlsListener::new(spec.name.clone(), t.clone(), gw.tls.tier_tickets.clone())
                .map_err(|e| {
                std::io::Error::other(format!("TLS listener {}: {e}", spec.name))
            })?;
            gw.tls.register(tls.clone());
            tls.log_certificates();
            Some(tls)
        }
    };
    let handle = spawn(tcp, spec.name.clone(), gw.clone(), tls.clone())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listener = %spec.name, "listening on {scheme}://{}", handle.local_addr);
    Ok(Entry {
        bind: spec.bind,
        name: spec.name.clone(),
        tls,
        handle,
    })
}
