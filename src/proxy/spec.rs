//! The `proxy:` section at run time: how requests are forwarded and what
//! a client connection may send. Compiled by `config/build.rs`.

use crate::ground::net::canonical_ip;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// `proxy.forwarded_for`: what happens to X-Forwarded-For.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedFor {
    /// Add the client's address to the list.
    #[default]
    Append,
    /// Replace the list with the client's address.
    Replace,
    /// Leave the header as the client sent it.
    Off,
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
