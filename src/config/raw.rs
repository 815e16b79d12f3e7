//! Serde types that mirror the YAML file one to one. They are only read by
//! `config::build`; nothing on the request path ever sees them.
//!
//! Every struct denies unknown keys so that a typo is an error, not a silent
//! default. Sections owned by later features are parsed here too, so the file
//! shape is fixed in one place.

use super::units::{Dur, Size};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub farms: Vec<RawFarm>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub default_farm: Option<String>,
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
    pub tls: Option<RawListenerTls>,
    /// Open client connections at most; see `docs/hardening.md`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Connections come from a layer-4 balancer that sends the PROXY
    /// protocol header first.
    #[serde(default)]
    pub proxy_protocol: Option<RawProxyProtocol>,
}

/// `listeners[].proxy_protocol`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxyProtocol {
    /// Who may connect (and must send the header): addresses or CIDRs.
    pub trusted_sources: Vec<String>,
}

/// `listeners[].tls`: terminate TLS on this listener.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    #[serde(default)]
    pub certificates: Vec<RawCertificate>,
    #[serde(default)]
    pub min_version: Option<TlsVersionText>,
    #[serde(default)]
    pub alpn: Option<Vec<String>>,
    #[serde(default)]
    pub handshake_timeout: Option<Dur>,
    #[serde(default)]
    pub watch_interval: Option<Dur>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: PathBuf,
    /// Absent: the key is in the cert file.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// A TLS version as written: `"1.2"`, or `1.2` which YAML reads as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsVersionText(pub String);

impl<'de> Deserialize<'de> for TlsVersionText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TlsVersionText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a TLS version: \"1.2\" or \"1.3\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsVersionText, E> {
                Ok(TlsVersionText(v.trim().to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TlsVersionText, E> {
                Ok(TlsVersionText(format!("{v:?}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TlsVersionText, E> {
                Ok(TlsVersionText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
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
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawAccessFormat {
    #[default]
    Text,
    Json,
    /// Apache/nginx "combined".
    Combined,
    /// IIS W3C extended, with its `#Fields:` header.
    W3c,
    Off,
}

#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub access: RawAccessFormat,
    #[serde(default)]
    pub access_file: Option<PathBuf>,
    /// Send access lines to syslog (RFC 5424) instead of stdout or a file.
    #[serde(default)]
    pub access_syslog: Option<crate::log::syslog::RawSyslog>,
    #[serde(default)]
    pub level: Option<String>,
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
    pub tls: Option<RawFarmTls>,
    /// How long an idle pooled connection to a server is kept.
    #[serde(default)]
    pub backend_idle_timeout: Option<Dur>,
}

/// `farms[].tls`: how `https://` servers are verified.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFarmTls {
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
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
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
}
