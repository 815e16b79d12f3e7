//! The `proxy:` section: its YAML form, its compiler and its run-time form
//! (how requests are forwarded and what a client connection may send).

use crate::ground::error::Problems;
use crate::ground::net::{canonical_ip, parse_nets};
use crate::ground::units::{Dur, Size};
use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;
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
    /// The header carrying a verified client certificate to the backend
    /// (base64 DER, as ARR's `X-ARR-ClientCert`); removed from every
    /// request that does not come with one, so it cannot be forged.
    pub client_cert_header: HeaderName,
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
    /// How long a read of an HTTP/1 request body may wait for the client.
    pub body_timeout: Duration,
    /// How long a response write may wait for the client to read.
    pub send_timeout: Duration,
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
            // nginx's client_body_timeout and send_timeout.
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
        }
    }
}

impl ProxySpec {
    /// A spec for unit tests: one-second timeouts, no retries, nobody
    /// trusted, the client certificate in `X-ARR-ClientCert`.
    #[cfg(test)]
    pub(crate) fn for_tests(forwarded_for: ForwardedFor, preserve_host: bool) -> ProxySpec {
        ProxySpec {
            client_cert_header: http::HeaderName::from_static("x-arr-clientcert"),
            forwarded_for,
            trusted_proxies: vec![],
            preserve_host,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            retries: 0,
            max_request_body: 0,
            limits: Default::default(),
        }
    }

    #[inline]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawForwardedFor {
    #[default]
    Append,
    Replace,
    Off,
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    #[serde(default)]
    pub forwarded_for: RawForwardedFor,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub preserve_host: Option<bool>,
    #[serde(default)]
    pub connect_timeout: Option<Dur>,
    #[serde(default)]
    pub response_timeout: Option<Dur>,
    #[serde(default)]
    pub idle_timeout: Option<Dur>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub max_request_body: Option<Size>,
    // hardening limits: see docs/hardening.md
    #[serde(default)]
    pub header_timeout: Option<Dur>,
    #[serde(default)]
    pub max_header_size: Option<Size>,
    #[serde(default)]
    pub max_headers: Option<usize>,
    #[serde(default)]
    pub http2_max_streams: Option<u32>,
    #[serde(default)]
    pub body_timeout: Option<Dur>,
    #[serde(default)]
    pub send_timeout: Option<Dur>,
    /// The header that passes a verified client certificate to backends.
    #[serde(default)]
    pub client_cert_header: Option<String>,
}

/// Compiles the `proxy:` section.
/// `proxy.client_cert_header` when not set: ARR's name.
pub const DEFAULT_CLIENT_CERT_HEADER: &str = "x-arr-clientcert";

pub fn build(raw: &RawProxy, p: &mut Problems) -> ProxySpec {
    let trusted = parse_nets(&raw.trusted_proxies, "proxy.trusted_proxies", p);
    let connect_timeout = raw.connect_timeout.map_or(Duration::from_secs(3), |d| d.0);
    if connect_timeout.is_zero() {
        p.add("proxy.connect_timeout", "must be greater than 0");
    }
    let response_timeout = raw
        .response_timeout
        .map_or(Duration::from_secs(60), |d| d.0);
    if response_timeout.is_zero() {
        p.add("proxy.response_timeout", "must be greater than 0");
    }
    let limits = build_limits(raw, p);
    let client_cert_header = match &raw.client_cert_header {
        None => HeaderName::from_static(DEFAULT_CLIENT_CERT_HEADER),
        Some(name) => HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|_| {
            p.add(
                "proxy.client_cert_header",
                format!("{name:?} is not a valid header name"),
            );
            HeaderName::from_static(DEFAULT_CLIENT_CERT_HEADER)
        }),
    };
    ProxySpec {
        client_cert_header,
        forwarded_for: match raw.forwarded_for {
            RawForwardedFor::Append => ForwardedFor::Append,
            RawForwardedFor::Replace => ForwardedFor::Replace,
            RawForwardedFor::Off => ForwardedFor::Off,
        },
        trusted_proxies: trusted,
        preserve_host: raw.preserve_host.unwrap_or(true),
        connect_timeout,
        response_timeout,
        idle_timeout: raw.idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
        retries: raw.retries.unwrap_or(2),
        max_request_body: raw.max_request_body.map_or(100 << 20, |s| s.0),
        limits,
    }
}

/// Client connection limits; the bounds keep hyper's own limits valid (an
/// HTTP/1 head must fit hyper's read buffer, ~400 KiB).
fn build_limits(raw: &RawProxy, p: &mut Problems) -> ClientLimits {
    let d = ClientLimits::default();
    let header_timeout = raw.header_timeout.map_or(d.header_timeout, |t| t.0);
    if header_timeout.is_zero() {
        p.add("proxy.header_timeout", "must be greater than 0");
    }
    let max_header_size = raw
        .max_header_size
        .map_or(d.max_header_size as u64, |s| s.0);
    if !(1024..=256 << 10).contains(&max_header_size) {
        p.add("proxy.max_header_size", "must be between 1KiB and 256KiB");
    }
    let max_headers = raw.max_headers.unwrap_or(d.max_headers);
    if !(1..=1000).contains(&max_headers) {
        p.add("proxy.max_headers", "must be between 1 and 1000");
    }
    let http2_max_streams = raw.http2_max_streams.unwrap_or(d.http2_max_streams);
    if http2_max_streams == 0 {
        p.add("proxy.http2_max_streams", "must be at least 1");
    }
    let body_timeout = raw.body_timeout.map_or(d.body_timeout, |t| t.0);
    if body_timeout.is_zero() {
        p.add("proxy.body_timeout", "must be greater than 0");
    }
    let send_timeout = raw.send_timeout.map_or(d.send_timeout, |t| t.0);
    if send_timeout.is_zero() {
        p.add("proxy.send_timeout", "must be greater than 0");
    }
    ClientLimits {
        header_timeout,
        max_header_size: max_header_size.min(256 << 10) as usize,
        max_headers,
        http2_max_streams,
        body_timeout,
        send_timeout,
    }
}
