//! Per-listener statistics: responses by status code, open and accepted
//! connections (TLS handshake counters live in `tls::TlsStats`). One `Arc<ListenerStats>` is resolved
//! per listener when it starts and handed to each connection, so counting a
//! response is one indexed `fetch_add`.

use super::status_codes::StatusCounts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct ListenerStats {
    pub name: Arc<str>,
    /// Responses sent to clients, by status (farmgate's own 502/503 too).
    pub codes: StatusCounts,
    connections_active: AtomicU64,
    /// Connections served since start (after the TLS handshake on TLS).
    pub connections_total: AtomicU64,
    /// Idle connections parked now (holding no HTTP state or buffers).
    pub connections_parked: AtomicU64,
    /// Client connections cut off by a timeout, by [`ClientTimeout`].
    pub client_timeouts: [AtomicU64; 3],
}

/// Which client timeout cut a connection off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimeout {
    /// `proxy.header_timeout`: a request head arrived too slowly (408).
    Header = 0,
    /// `proxy.body_timeout`: a request body stalled.
    Body = 1,
    /// `proxy.send_timeout`: the client stopped reading the response.
    Send = 2,
}

impl ClientTimeout {
    pub const ALL: [ClientTimeout; 3] = [
        ClientTimeout::Header,
        ClientTimeout::Body,
        ClientTimeout::Send,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ClientTimeout::Header => "header",
            ClientTimeout::Body => "body",
            ClientTimeout::Send => "send",
        }
    }
}

impl ListenerStats {
    pub fn new(name: Arc<str>) -> Self {
        ListenerStats {
            name,
            codes: StatusCounts::default(),
            connections_active: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            connections_parked: AtomicU64::new(0),
            client_timeouts: Default::default(),
        }
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    pub fn count_timeout(&self, which: ClientTimeout) {
        self.client_timeouts[which as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connections_active(&self) -> u64 {
        self.connections_active.load(Ordering::Relaxed)
    }
}

/// An open client connection of a listener.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<ListenerStats>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_open_connections() {
        let s = Arc::new(ListenerStats::new("public".into()));
        let a = s.connection();
        let b = s.connection();
        assert_eq!(s.connections_active(), 2);
        drop(a);
        assert_eq!(s.connections_active(), 1);
        drop(b);
        assert_eq!(s.connections_active(), 0);
        assert_eq!(s.connections_total.load(Ordering::Relaxed), 2);
    }
}
