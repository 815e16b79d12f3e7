//! The `log:` section: its YAML form, its compiler and its run-time form.

use super::access::AccessFormat;
use super::syslog;
use crate::ground::error::Problems;
use serde::Deserialize;
use std::path::PathBuf;

/// The `log:` section at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSpec {
    pub access: AccessFormat,
    pub access_file: Option<PathBuf>,
    /// Access lines go to syslog instead of stdout or `access_file`.
    pub access_syslog: Option<syslog::SyslogSpec>,
    pub level: String,
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

/// Compiles the `log:` section.
pub fn build(raw: &RawLog, p: &mut Problems) -> LogSpec {
    let log = LogSpec {
        access: match raw.access {
            RawAccessFormat::Text => AccessFormat::Text,
            RawAccessFormat::Json => AccessFormat::Json,
            RawAccessFormat::Combined => AccessFormat::Combined,
            RawAccessFormat::W3c => AccessFormat::W3c,
            RawAccessFormat::Off => AccessFormat::Off,
        },
        access_file: raw.access_file.clone(),
        access_syslog: raw
            .access_syslog
            .as_ref()
            .and_then(|r| super::syslog::build(r, "log.access_syslog", p)),
        level: raw.level.clone().unwrap_or_else(|| "info".into()),
    };
    if log.access_syslog.is_some() && log.access_file.is_some() {
        p.add(
            "log.access_syslog",
            "choose one of access_file and access_syslog",
        );
    }
    if log.access_syslog.is_some() && log.access == AccessFormat::W3c {
        p.add(
            "log.access_syslog",
            "the w3c format needs a file or stdout for its #Fields header; use text, json or combined with syslog",
        );
    }
    if !["trace", "debug", "info", "warn", "error"].contains(&log.level.as_str()) {
        p.add(
            "log.level",
            format!(
                "unknown level {:?}; expected trace, debug, info, warn or error",
                log.level
            ),
        );
    }
    log
}
