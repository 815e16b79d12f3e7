//! Serde types that mirror the YAML file one to one. They are only read by
//! `config::build`; nothing on the request path ever sees them.
//!
//! Every struct denies unknown keys so that a typo is an error, not a silent
//! default. Sections owned by later features are parsed here too, so the file
//! shape is fixed in one place.

use super::units::{Dur, Size};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize, Default)]
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
    pub rules: Vec<super::raw_rules::RawRule>,
    #[serde(default)]
    pub default_farm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    #[serde(default)]
    pub name: Option<String>,
    pub bind: String,
    // tls: owned by the TLS feature
    #[serde(default)]
    pub tls: Option<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedFor {
    #[default]
    Append,
    Replace,
    Off,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    #[serde(default)]
    pub forwarded_for: ForwardedFor,
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
    // hardening limits: owned by the hardening feature
    #[serde(default)]
    pub header_timeout: Option<Dur>,
    #[serde(default)]
    pub max_header_size: Option<Size>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessFormat {
    #[default]
    Text,
    Json,
    Off,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    #[serde(default)]
    pub access: AccessFormat,
    #[serde(default)]
    pub access_file: Option<PathBuf>,
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    #[serde(default)]
    pub worker_threads: Option<usize>,
    #[serde(default)]
    pub shutdown_timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFarm {
    pub name: String,
    #[serde(default)]
    pub algorithm: Option<String>,
    // hash_key: used by the hash algorithm (farms feature)
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    // affinity: owned by the farms feature
    #[serde(default)]
    pub affinity: Option<yaml_serde::Value>,
    // health_check: owned by the health feature
    #[serde(default)]
    pub health_check: Option<yaml_serde::Value>,
    // live_traffic: owned by the health feature
    #[serde(default)]
    pub live_traffic: Option<yaml_serde::Value>,
    // min_servers: owned by the health feature
    #[serde(default)]
    pub min_servers: Option<u32>,
    // slow_start: owned by the health feature
    #[serde(default)]
    pub slow_start: Option<Dur>,
    // cache: owned by the cache feature
    #[serde(default)]
    pub cache: Option<yaml_serde::Value>,
    // tls: owned by the TLS feature (re-encryption to backends)
    #[serde(default)]
    pub tls: Option<yaml_serde::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub weight: Option<u32>,
}
