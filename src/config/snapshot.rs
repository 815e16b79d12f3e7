//! The compiled, immutable runtime snapshot. Built once per load or reload
//! by `config::build`, then shared behind one `ArcSwap`; a request loads it
//! once and uses it to the end, so a reload never changes a request midway.

use crate::farm::Farm;
use crate::rules::RuleSet;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::raw::{AccessFormat, ForwardedFor};

#[derive(Debug)]
pub struct Snapshot {
    /// The file this was read from, for messages.
    pub file: String,
    pub listeners: Vec<ListenerSpec>,
    pub admin: AdminSpec,
    pub proxy: ProxySpec,
    pub log: LogSpec,
    pub runtime: RuntimeSpec,
    pub farms: Vec<Farm>,
    pub default_farm: Option<usize>,
    pub rules: RuleSet,
    /// Client TLS settings of the `https://` servers, for the connector.
    pub backend_tls: Arc<crate::tls::backend::BackendTlsMap>,
}

impl Snapshot {
    pub fn farm_index(&self, name: &str) -> Option<usize> {
        self.farms.iter().position(|f| &*f.name == name)
    }

    /// A one-line summary for `farmgate check` and the start-up log.
    pub fn summary(&self) -> String {
        let servers: usize = self.farms.iter().map(|f| f.servers.len()).sum();
        format!(
            "{} listener(s), {} farm(s), {} server(s), {} rule(s)",
            self.listeners.len(),
            self.farms.len(),
            servers,
            self.rules.len()
        )
    }
}

#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: Arc<str>,
    pub bind: SocketAddr,
    /// TLS termination settings; `None` for plain HTTP.
    pub tls: Option<Arc<crate::tls::TlsSpec>>,
    /// At most this many client connections are open on this listener.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct AdminSpec {
    pub enabled: bool,
    pub bind: SocketAddr,
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProxySpec {
    pub forwarded_for: ForwardedFor,
    pub trusted_proxies: Vec<IpNet>,
    pub preserve_host: bool,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    pub retries: u32,
    pub max_request_body: u64,
    /// What a client connection may send and how long it may take.
    pub limits: ClientLimits,
}

/// Limits on client connections (see `docs/hardening.md`). Read once per
/// connection by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From the first byte of a request head (from accept for the first
    /// request) until the head is complete.
    pub header_timeout: Duration,
    /// Bytes of an HTTP/1 request head (request line and headers); the
    /// HTTP/2 header list size.
    pub max_header_size: usize,
    /// Header fields of an HTTP/1 request head.
    pub max_headers: usize,
    /// Concurrent streams of one HTTP/2 connection.
    pub http2_max_streams: u32,
}

impl ClientLimits {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(10),
            max_header_size: 32 << 10,
            max_headers: 100,
            http2_max_streams: 100,
        }
    }
}

impl ProxySpec {
    #[inline]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) as plain IPv4.
#[inline]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSpec {
    pub access: AccessFormat,
    pub access_file: Option<PathBuf>,
    /// Access lines go to syslog instead of stdout or `access_file`.
    pub access_syslog: Option<crate::log::syslog::SyslogSpec>,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    pub worker_threads: Option<usize>,
    pub shutdown_timeout: Duration,
}
