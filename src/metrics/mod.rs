//! Metrics: what farmgate counts and how Prometheus reads it.
//!
//! Counting happens on the request path through atomics resolved when a
//! snapshot or listener is built: `ServerState::stats` ([`ServerStats`]),
//! one [`ListenerStats`] per listener; the health, TLS, cache and reload
//! modules keep their own counters, read here too.
//! Exporting happens at scrape time: a
//! prometheus-client `Registry` of custom collectors (registered from above,
//! `admin/collect.rs`) walks the current snapshot and reads those atomics.
//! Names live in `names.rs`.

pub mod histogram;
pub mod listener;
pub mod names;
pub mod reload;
pub mod server;
pub mod status_codes;

pub use listener::{ConnectionGuard, ListenerStats};
pub use server::{FailureReason, ServerStats};

use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// The `Content-Type` of the exposition `/metrics` serves.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Gateway-wide metrics: listener statistics and the registry that exports
/// everything.
#[derive(Debug)]
pub struct Metrics {
    /// By listener name; kept for the life of the process so a listener's
    /// counters survive a reload that keeps it.
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
    registry: Mutex<Registry>,
    /// When this gateway started serving.
    pub started_at: SystemTime,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            listeners: Mutex::new(Vec::new()),
            registry: Mutex::new(Registry::default()),
            started_at: SystemTime::now(),
            started: Instant::now(),
        }
    }

    /// Adds a collector the exposition reads at every scrape.
    pub fn register(&self, collector: Box<dyn Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(collector);
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The statistics of the listener named `name`, created the first time.
    /// Called once per listener start, never per request.
    pub fn listener(&self, name: &Arc<str>) -> Arc<ListenerStats> {
        let mut all = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = all.iter().find(|l| l.name == *name) {
            return l.clone();
        }
        let l = Arc::new(ListenerStats::new(name.clone()));
        all.push(l.clone());
        l
    }

    /// Every listener's statistics, in start order.
    pub fn listeners(&self) -> Vec<Arc<ListenerStats>> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The OpenMetrics text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            // Writing to a String cannot fail; an encoder error means a bug
            // in a collector. Serve what was written and say so.
            tracing::error!("metrics exposition failed to encode");
        }
        out
    }
}
