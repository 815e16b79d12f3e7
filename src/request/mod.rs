//! The request stage: one request from the listener's hand-off to its
//! response, each stage entered once and in this order:
//!
//! 1. `entry.rs` ([`handle`]): loads the snapshot once, opens the request's
//!    [`Exchange`](crate::proxy::exchange::Exchange) (in-flight slot, access
//!    log record);
//! 2. `route.rs`: the rules pick a farm, rewrite the URL, set headers, or
//!    answer locally (redirect, respond, abort); the limits that apply are
//!    checked there (`limit.rs`, [`limit::check`]), before the rewrite;
//! 3. the forwarding headers are applied (`proxy::forward::prepare`) and what
//!    selection needs is read from the head (hash key, affinity cookie);
//! 4. the cache (`cache::serve`) answers or fetches through the forwarder
//!    ([`Forwarder`](crate::proxy::forward::Forwarder)), the request's
//!    context for forwarding: farm, health records, pools, pick;
//! 5. the compression stage (`compress::plan` before the cache, while the
//!    request head is there; `compress::apply` on its answer) encodes the
//!    response when it may;
//! 6. the affinity cookie and the status count finish the response.
//!
//! [`Shared`] is all the request path takes from the running gateway,
//! resolved once when the gateway is built: no service locator per request.

pub mod entry;
pub mod limit;
pub mod route;

pub use entry::{handle, handle_h1, Handled};

use crate::config::Snapshot;
use crate::log::access::AccessLog;
use crate::metrics::ListenerStats;
use crate::proxy::upstream::Upstream;
use crate::trace::{ExportSpec, SpanExporter, SpanStats};
use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderValue;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What every request shares: the current snapshot (swapped whole on
/// reload), the backend side, the access log, the span exporter.
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    access_log: ArcSwapOption<AccessLog>,
    /// The running span exporter (`trace.export`), replaced on reload.
    spans: ArcSwapOption<SpanExporter>,
    /// The exporters' counters, kept across reloads.
    pub span_stats: Arc<SpanStats>,
    /// Sends requests to backends over pooled connections.
    pub upstream: Upstream,
    /// Bumped by every installed snapshot, so long-lived loops notice new
    /// settings.
    generation: AtomicU64,
}

impl Shared {
    pub fn new(snapshot: Snapshot, upstream: Upstream, access_log: Option<Arc<AccessLog>>) -> Self {
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            access_log: ArcSwapOption::new(access_log),
            spans: ArcSwapOption::empty(),
            span_stats: Arc::default(),
            upstream,
            generation: AtomicU64::new(0),
        }
    }

    /// The snapshot a request uses from start to end.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Installs a new snapshot; requests in flight keep the one they loaded.
    pub fn store(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes with every installed snapshot.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    #[inline]
    pub fn access_log(&self) -> Option<Arc<AccessLog>> {
        self.access_log.load_full()
    }

    pub fn set_access_log(&self, log: Option<Arc<AccessLog>>) {
        self.access_log.store(log);
    }

    #[inline]
    pub fn span_exporter(&self) -> Option<Arc<SpanExporter>> {
        self.spans.load_full()
    }

    /// Starts, replaces or stops the span exporter for `spec` (the new
    /// snapshot's `trace.export`); a running one with the same settings is
    /// kept. The one replaced ends once its last spans are sent.
    pub fn set_span_export(&self, spec: Option<&ExportSpec>) {
        let running = self.spans.load();
        if running.as_ref().map(|e| e.spec()) == spec {
            return;
        }
        match spec.map(|s| SpanExporter::start(s, self.span_stats.clone())) {
            None => self.spans.store(None),
            Some(Ok(e)) => self.spans.store(Some(e)),
            Some(Err(e)) => tracing::error!("span exporter not started: {e}"),
        }
    }
}

/// What is known about a client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub listener: Arc<str>,
    /// The listener's counters, resolved once when it started.
    pub stats: Arc<ListenerStats>,
    pub tls: bool,
    /// The client IP, rendered once for X-Forwarded-For.
    pub client_ip: HeaderValue,
    /// The verified client certificate (mutual TLS), read at the handshake.
    pub client_cert: Option<Arc<crate::tls::client_auth::ClientCert>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, stats: Arc<ListenerStats>, tls: bool) -> Self {
        let client_ip = match crate::ground::net::canonical_ip(peer.ip()) {
            std::net::IpAddr::V4(v4) => {
                let mut text = [0u8; 15];
                let n = crate::ground::net::ipv4_text(v4, &mut text);
                HeaderValue::from_bytes(&text[..n])
            }
            v6 => HeaderValue::from_str(&v6.to_string()),
        }
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            local,
            listener: stats.name.clone(),
            stats,
            tls,
            client_ip,
            client_cert: None,
        }
    }

    /// The client's address (IPv4-mapped IPv6 folded to IPv4).
    #[inline]
    pub fn client_addr(&self) -> std::net::IpAddr {
        crate::ground::net::canonical_ip(self.peer.ip())
    }

    /// The same connection, authenticated by `cert` at its TLS handshake.
    pub fn with_client_cert(&self, cert: Arc<crate::tls::client_auth::ClientCert>) -> ConnInfo {
        ConnInfo {
            peer: self.peer,
            local: self.local,
            listener: self.listener.clone(),
            stats: self.stats.clone(),
            tls: self.tls,
            client_ip: self.client_ip.clone(),
            client_cert: Some(cert),
        }
    }
}
