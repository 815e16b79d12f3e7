//! Serde types that mirror the YAML file one to one. They are only read by
//! `config::build`; nothing on the request path ever sees them.
//!
//! Every struct denies unknown keys so that a typo is an error, not a silent
//! default. Sections owned by later features are parsed here too, so the file
//! shape is fixed in one place.

use super::units::Dur;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Files whose `listeners`, `farms`, `rules`, `rewrite_maps` and
    /// `limits` are merged into this file's (`config::include`).
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub proxy: crate::proxy::spec::RawProxy,
    #[serde(default)]
    pub log: crate::log::spec::RawLog,
    /// W3C trace context and span export (`docs/observability.md`).
    #[serde(default)]
    pub trace: Option<crate::trace::RawTrace>,
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub farms: Vec<RawFarm>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Named key -> value tables the rules look up (`{Name:key}`).
    #[serde(default)]
    pub rewrite_maps: Vec<crate::rules::maps::RawMap>,
    #[serde(default)]
    pub default_farm: Option<String>,
    /// Rate limits, referenced by name from listeners, farms and rules.
    #[serde(default)]
    pub limits: Vec<crate::limits::RawLimit>,
    /// A tier of instances coordinated through Redis (`docs/cluster.md`).
    #[serde(default)]
    pub cluster: Option<super::cluster::RawCluster>,
    /// Where host names in server addresses are looked up.
    #[serde(default)]
    pub resolve: crate::farm::resolve::RawResolve,
}

/// A rule as written: `rules/` owns its shape; its `compression` section
/// belongs to the compression stage, a layer above `rules/`.
pub type RawRule = crate::rules::raw::RawRule<crate::compress::RawCompression>;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    #[serde(default)]
    pub name: Option<String>,
    pub bind: String,
    #[serde(default)]
    pub tls: Option<crate::tls::spec::RawListenerTls>,
    /// Open client connections at most; see `docs/hardening.md`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Connections come from a layer-4 balancer that sends the PROXY
    /// protocol header first.
    #[serde(default)]
    pub proxy_protocol: Option<RawProxyProtocol>,
    /// Open connections one client address may have; more are closed.
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    /// Limits every request of this listener passes (names in `limits:`).
    #[serde(default)]
    pub limits: Vec<String>,
    /// IP allow and deny lists: a refused client's connection is closed.
    #[serde(default)]
    pub access: Option<crate::limits::RawAccess>,
}

/// `listeners[].proxy_protocol`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxyProtocol {
    /// Who may connect (and must send the header): addresses or CIDRs.
    pub trusted_sources: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    // token / token_file: owned by the admin feature
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            bind: default_admin_bind(),
            enabled: None,
            token: None,
            token_file: None,
        }
    }
}

fn default_admin_bind() -> String {
    "127.0.0.1:9090".to_string()
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    #[serde(default)]
    pub worker_threads: Option<usize>,
    #[serde(default)]
    pub shutdown_timeout: Option<Dur>,
    /// Where `farmgate run` writes its pid (rewritten by the new process of
    /// a binary upgrade).
    #[serde(default)]
    pub pid_file: Option<String>,
    /// Who serves HTTP/1 client connections: `engine` (farmgate's own
    /// HTTP/1 code, `src/http1/`) or `hyper` (the escape hatch).
    #[serde(default)]
    pub http1: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFarm {
    pub name: String,
    #[serde(default)]
    pub algorithm: Option<String>,
    /// What the `hash` algorithm hashes.
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    #[serde(default)]
    pub affinity: Option<RawAffinity>,
    // health_check, live_traffic, min_servers, slow_start: the health feature
    #[serde(default)]
    pub health_check: Option<crate::health::spec::RawHealthCheck>,
    #[serde(default)]
    pub live_traffic: Option<crate::health::spec::RawLiveTraffic>,
    #[serde(default)]
    pub min_servers: Option<u32>,
    #[serde(default)]
    pub slow_start: Option<Dur>,
    /// The response cache (`cache::config`).
    #[serde(default)]
    pub cache: Option<crate::cache::RawCache>,
    /// Response compression (`compress::config`).
    #[serde(default)]
    pub compression: Option<crate::compress::RawCompression>,
    /// TLS to this farm's `https://` servers.
    #[serde(default)]
    pub tls: Option<crate::tls::spec::RawFarmTls>,
    /// How long an idle pooled connection to a server is kept.
    #[serde(default)]
    pub backend_idle_timeout: Option<Dur>,
    /// HTTP version spoken to the servers: http1 (default), http2 (h2c on
    /// http://, ALPN h2 on https://; needed for gRPC) or auto (ALPN on
    /// https://, HTTP/1.1 on http://).
    #[serde(default)]
    pub protocol: Option<crate::proxy::protocol::RawProtocol>,
    /// gRPC statuses (`unavailable`, `resource_exhausted`,
    /// `deadline_exceeded`, `internal`) that send a call answered with that
    /// status alone (trailers-only) to another server, up to
    /// `proxy.retries` times. Only for services whose calls are safe to
    /// run twice when the server says so. Needs `protocol: http2` or `auto`.
    #[serde(default)]
    pub grpc_retry_on: Vec<crate::proxy::grpc::RawRetryOn>,
    /// Limits every request routed to this farm passes (names in `limits:`).
    #[serde(default)]
    pub limits: Vec<String>,
    /// Send the PROXY protocol header to this farm's servers (`v2`, or
    /// `v1`), naming the client, on every new connection.
    #[serde(default)]
    pub proxy_protocol: Option<RawSendProxy>,
    /// How often servers addressed by host name are looked up again
    /// (default 30s); a server's own setting wins.
    #[serde(default)]
    pub resolve_interval: Option<Dur>,
    /// The servers' interim responses (103 Early Hints...): `relay` (the
    /// default) to HTTP/1.1 clients as they arrive, or `drop`.
    #[serde(default)]
    pub interim_responses: Option<crate::proxy::interim::RawInterim>,
}

/// `farms[].proxy_protocol`: the version sent to the servers.
#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawSendProxy {
    V1,
    V2,
}

/// `farms[].affinity`: cookie affinity; the cookie name turns it on.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAffinity {
    pub cookie: String,
    #[serde(default)]
    pub ttl: Option<Dur>,
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the secret (Docker/Kubernetes secrets); a trailing
    /// line break is dropped. Not together with `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
    /// How often this server's host name is looked up again (default: the
    /// farm's `resolve_interval`, else 30s).
    #[serde(default)]
    pub resolve_interval: Option<Dur>,
}
