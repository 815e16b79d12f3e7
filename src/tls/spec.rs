//! The TLS parts of the config: `listeners[].tls` and `farms[].tls` as
//! written in YAML, and their compilers: a listener's section into a
//! [`TlsSpec`] (certificates are loaded and checked here, so `farmgate
//! check` proves them), the farms' `https://` servers with `farms[].tls`
//! into the [`BackendTlsMap`] the connector uses.

use super::acceptor::MinVersion;
use super::backend::{self, BackendTarget, BackendTlsError, BackendTlsMap};
use super::certs::{load_set, CertPaths};
use super::TlsSpec;
use crate::ground::error::Problems;
use crate::ground::net::parse_address;
use crate::ground::units::Dur;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The ALPN ids farmgate can serve, in the default preference order.
pub const SUPPORTED_ALPN: [&str; 2] = ["h2", "http/1.1"];

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

/// `farms[].tls`: how `https://` servers are verified.
#[derive(Debug, Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFarmTls {
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

impl JsonSchema for TlsVersionText {
    fn schema_name() -> Cow<'static, str> {
        "TlsVersion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The lowest TLS version accepted: \"1.2\" or \"1.3\".",
            "anyOf": [
                { "type": "string", "enum": ["1.2", "1.3"] },
                { "type": "number", "enum": [1.2, 1.3] }
            ]
        })
    }
}

/// `listeners[i].tls` (`at`) into a spec with its certificates loaded.
pub fn build_listener_tls(
    raw: &RawListenerTls,
    at: &str,
    p: &mut Problems,
) -> Option<Arc<TlsSpec>> {
    let before = p.0.len();
    if raw.certificates.is_empty() {
        p.add(
            format!("{at}.certificates"),
            "at least one certificate is needed (- cert: chain.pem\n  key: key.pem)",
        );
    }
    let paths: Vec<CertPaths> = raw
        .certificates
        .iter()
        .map(|c| CertPaths {
            cert: c.cert.clone(),
            key: c.key.clone().unwrap_or_else(|| c.cert.clone()),
        })
        .collect();

    let min_version = match raw.min_version.as_ref().map(|v| v.0.as_str()) {
        None | Some("1.2") => MinVersion::Tls12,
        Some("1.3") => MinVersion::Tls13,
        Some(v @ ("1.0" | "1.1")) => {
            p.add(
                format!("{at}.min_version"),
                format!("TLS {v} is not supported (it is broken); use \"1.2\" or \"1.3\""),
            );
            MinVersion::Tls12
        }
        Some(v) => {
            p.add(
                format!("{at}.min_version"),
                format!("unknown TLS version {v:?}; use \"1.2\" or \"1.3\""),
            );
            MinVersion::Tls12
        }
    };

    let alpn_text: Vec<String> = raw
        .alpn
        .clone()
        .unwrap_or_else(|| SUPPORTED_ALPN.iter().map(|s| s.to_string()).collect());
    for (j, id) in alpn_text.iter().enumerate() {
        if !SUPPORTED_ALPN.contains(&id.as_str()) {
            p.add(
                format!("{at}.alpn[{j}]"),
                format!("unknown protocol {id:?}; farmgate speaks \"h2\" and \"http/1.1\""),
            );
        } else if alpn_text[..j].contains(id) {
            p.add(format!("{at}.alpn[{j}]"), format!("{id:?} is listed twice"));
        }
    }

    let handshake_timeout = raw
        .handshake_timeout
        .map_or(DEFAULT_HANDSHAKE_TIMEOUT, |d| d.0);
    if handshake_timeout.is_zero() {
        p.add(format!("{at}.handshake_timeout"), "must be greater than 0");
    }
    let watch_interval = raw.watch_interval.map_or(DEFAULT_WATCH_INTERVAL, |d| d.0);

    let loaded = if paths.is_empty() {
        None
    } else {
        match load_set(&paths) {
            Ok(set) => Some(Arc::new(set)),
            Err(errors) => {
                for e in errors.0 {
                    let which = &paths[e.index];
                    let field = if e.error.file() == which.key && which.key != which.cert {
                        "key"
                    } else {
                        "cert"
                    };
                    p.add(
                        format!("{at}.certificates[{}].{field}", e.index),
                        e.error.to_string(),
                    );
                }
                None
            }
        }
    };
    if p.0.len() != before {
        return None;
    }
    Some(Arc::new(TlsSpec {
        certificates: paths,
        loaded: loaded?,
        min_version,
        alpn: alpn_text.into_iter().map(String::into_bytes).collect(),
        handshake_timeout,
        watch_interval,
    }))
}

/// What the backend TLS compiler reads of one farm.
pub struct FarmTlsInput<'a> {
    pub name: &'a str,
    /// Its servers' addresses as written.
    pub addresses: Vec<&'a str>,
    pub tls: Option<&'a RawFarmTls>,
}

/// Client TLS settings for every `https://` server of every farm.
pub fn build_backend_tls(farms: &[FarmTlsInput<'_>], p: &mut Problems) -> BackendTlsMap {
    let mut map = BackendTlsMap::default();
    for (fi, f) in farms.iter().enumerate() {
        let at = format!("farms[{fi}]");
        let https: Vec<(usize, http::uri::Authority)> = f
            .addresses
            .iter()
            .enumerate()
            .filter_map(|(si, address)| match parse_address(address) {
                Ok((scheme, auth)) if scheme == http::uri::Scheme::HTTPS => Some((si, auth)),
                _ => None,
            })
            .collect();
        let raw_tls = f.tls;
        let ca = raw_tls.and_then(|t| t.ca.clone());
        let insecure = raw_tls
            .and_then(|t| t.insecure_skip_verify)
            .unwrap_or(false);
        if raw_tls.is_some() && https.is_empty() {
            p.add(
                format!("{at}.tls"),
                "no server of this farm uses https://; write addresses as \"https://host:port\" to connect with TLS",
            );
            continue;
        }
        if insecure && ca.is_some() {
            p.add(
                format!("{at}.tls.insecure_skip_verify"),
                "give either ca or insecure_skip_verify, not both",
            );
            continue;
        }
        let Some((first, _)) = https.first() else {
            continue;
        };
        let config = match backend::client_config(ca.as_deref(), insecure) {
            Ok(c) => c,
            Err(e) => {
                let key = match e {
                    BackendTlsError::NoSystemRoots(_) => format!("{at}.servers[{first}].address"),
                    _ => format!("{at}.tls.ca"),
                };
                p.add(key, e.to_string());
                continue;
            }
        };
        let farm: Arc<str> = f.name.into();
        for (si, authority) in &https {
            let key = format!("{at}.servers[{si}].address");
            let server_name = match backend::server_name(authority.host()) {
                Ok(n) => n,
                Err(e) => {
                    p.add(key, e);
                    continue;
                }
            };
            let target = BackendTarget {
                config: config.clone(),
                server_name,
                farm: farm.clone(),
                ca: ca.clone(),
                insecure,
            };
            if let Err(other) = map.insert(authority.as_str(), target) {
                p.add(
                    key,
                    format!(
                        "https://{authority} is also a server of farm {other:?} with other tls settings; \
                         farms sharing a server share its connections, so give them the same tls"
                    ),
                );
            }
        }
    }
    map
}
