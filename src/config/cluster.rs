//! The `cluster:` section: a tier of farmgate instances coordinated
//! through Redis (or Valkey). Raw serde types, their compiler and the
//! compiled [`ClusterSpec`]; what runs with it is `crate::cluster`, a layer
//! above (tasks), which the config layer may not name, so the section's
//! types live here as the admin section's do. Off when absent.
//!
//! Also [`tier_hash`]: the hash of the settings that must agree across a
//! tier, which every instance publishes so drift shows.

use super::error::Problems;
use super::snapshot::Snapshot;
use super::units::Dur;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `cluster:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `false` keeps the section but runs alone.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `redis://host:port/db` or `rediss://` (TLS); one URL or a list tried
    /// in order (a primary and its stand-ins).
    pub redis: RawRedisUrls,
    /// The tier's name: the key namespace, so several tiers can share one
    /// Redis. Default `farmgate`.
    #[serde(default)]
    pub name: Option<String>,
    /// This instance's id in the tier. Default: hostname and the first
    /// listener's address.
    #[serde(default)]
    pub instance: Option<String>,
    /// ACL user name (Redis 6+); the URL may carry one too.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the Redis password (trailing newline ignored), so the
    /// secret stays out of the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Every Redis operation's deadline (connecting too). Default 250ms.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// How often the heartbeat is written and the tier's state re-read
    /// (the safety net behind pub/sub). Default 1s.
    #[serde(default)]
    pub heartbeat_interval: Option<Dur>,
    /// Failures in a row that open the circuit breaker. Default 3.
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// How long an open breaker keeps Redis untouched before one trial.
    /// Default 2s.
    #[serde(default)]
    pub breaker_cooldown: Option<Dur>,
    /// TLS session ticket keys shared by the tier: how often one instance
    /// makes a new key. Default 1h; a ticket stays valid for two periods.
    #[serde(default)]
    pub ticket_rotation: Option<Dur>,
    /// Share TLS session ticket keys through Redis. Default true.
    #[serde(default)]
    pub share_tickets: Option<bool>,
}

/// One URL or a list.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawRedisUrls {
    One(String),
    Many(Vec<String>),
}

/// The compiled section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub urls: Vec<String>,
    pub name: String,
    /// None: derived at start (hostname + first listener).
    pub instance: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
    pub heartbeat_interval: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub ticket_rotation: Duration,
    pub share_tickets: bool,
}

impl ClusterSpec {
    /// The Redis key `farmgate:{name}:{what}`.
    pub fn key(&self, what: &str) -> String {
        format!("farmgate:{}:{what}", self.name)
    }
}

/// The key hasher of the tier's `scope: cluster` limits: keyed by the
/// tier's name and password, so every instance of the tier (whatever its
/// process or build) names a request key alike, and a client cannot
/// compute it without the password.
pub fn limit_hasher(spec: &ClusterSpec) -> crate::limits::key::KeyHasher {
    let seed = format!(
        "{}\0{}",
        spec.name,
        spec.password.as_deref().unwrap_or_default()
    );
    crate::limits::key::KeyHasher::tier(seed.as_bytes())
}

/// Compiles `cluster:`; None when absent or `enabled: false`.
pub fn build(raw: Option<&RawCluster>, p: &mut Problems) -> Option<ClusterSpec> {
    let raw = raw?;
    if raw.enabled == Some(false) {
        return None;
    }
    let urls = match &raw.redis {
        RawRedisUrls::One(u) => vec![u.clone()],
        RawRedisUrls::Many(list) => list.clone(),
    };
    if urls.is_empty() {
        p.add(
            "cluster.redis",
            "name at least one redis:// or rediss:// URL",
        );
    }
    for (i, url) in urls.iter().enumerate() {
        let at = match raw.redis {
            RawRedisUrls::One(_) => "cluster.redis".to_string(),
            RawRedisUrls::Many(_) => format!("cluster.redis[{i}]"),
        };
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            p.add(
                at,
                format!(
                    "{url:?} is not a Redis URL; expected redis://host:port or rediss://host:port"
                ),
            );
        } else if let Err(e) = redis::parse_redis_url(url)
            .ok_or("unparsable")
            .and_then(|u| {
                redis::IntoConnectionInfo::into_connection_info(u).map_err(|_| "unusable")
            })
        {
            p.add(at, format!("{url:?} is not a valid Redis URL ({e})"));
        }
    }
    let name = raw.name.clone().unwrap_or_else(|| "farmgate".into());
    if name.is_empty() || name.contains(char::is_whitespace) {
        p.add("cluster.name", "a non-empty name without spaces");
    }
    if raw.instance.as_deref().is_some_and(str::is_empty) {
        p.add("cluster.instance", "must not be empty");
    }
    let password =
        raw.password_file
            .as_ref()
            .and_then(|path| match std::fs::read_to_string(path) {
                Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_string()),
                Err(e) => {
                    p.add(
                        "cluster.password_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            });
    let positive = |d: Option<Dur>, default: Duration, key: &str, p: &mut Problems| {
        let v = d.map_or(default, |d| d.0);
        if v.is_zero() {
            p.add(format!("cluster.{key}"), "must be more than zero");
        }
        v
    };
    let timeout = positive(raw.timeout, Duration::from_millis(250), "timeout", p);
    let heartbeat_interval = positive(
        raw.heartbeat_interval,
        Duration::from_secs(1),
        "heartbeat_interval",
        p,
    );
    let breaker_cooldown = positive(
        raw.breaker_cooldown,
        Duration::from_secs(2),
        "breaker_cooldown",
        p,
    );
    let ticket_rotation = positive(
        raw.ticket_rotation,
        Duration::from_secs(3600),
        "ticket_rotation",
        p,
    );
    let breaker_failures = raw.breaker_failures.unwrap_or(3);
    if breaker_failures == 0 {
        p.add("cluster.breaker_failures", "must be at least 1");
    }
    Some(ClusterSpec {
        urls,
        name,
        instance: raw.instance.clone(),
        username: raw.username.clone(),
        password,
        timeout,
        heartbeat_interval,
        breaker_failures,
        breaker_cooldown,
        ticket_rotation,
        share_tickets: raw.share_tickets.unwrap_or(true),
    })
}

/// The top-level keys whose settings must agree across a tier: farms (with
/// their cache), rules, the default farm, rate limits. Bind addresses, the
/// admin listener, logging, runtime and the instance name stay out.
const TIER_KEYS: &[&str] = &["farms", "rules", "default_farm", "limits"];

/// A short hex hash of what must agree across the tier: the [`TIER_KEYS`]
/// sections as parsed (so key order and comments do not matter) and the
/// names the TLS listeners serve.
pub fn tier_hash(text: &str, snapshot: &Snapshot) -> String {
    let parsed: serde_json::Value = yaml_serde::from_str::<yaml_serde::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut agreed = serde_json::Map::new();
    for key in TIER_KEYS {
        if let Some(v) = parsed.get(key) {
            agreed.insert((*key).to_string(), v.clone());
        }
    }
    let mut names: Vec<String> = snapshot
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t| t.loaded.certs().iter().map(|c| c.names_text()))
        .collect();
    names.sort();
    names.dedup();
    agreed.insert("tls_names".into(), names.into());
    // serde_json's map is ordered by key: the text is canonical.
    let canonical = serde_json::Value::Object(agreed).to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::StateRegistry;

    const BASE: &str = "listeners:\n  - bind: \"127.0.0.1:0\"\nfarms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9001\"\n";

    fn load(text: &str) -> Result<Snapshot, Vec<String>> {
        crate::config::load_str(text, "f.yaml", &StateRegistry::default())
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn absent_is_off_and_defaults_fill_in() {
        assert!(load(BASE).expect("valid").cluster.is_none());
        let s = load(&format!(
            "{BASE}cluster:\n  redis: redis://127.0.0.1:6379\n"
        ))
        .expect("valid");
        let c = s.cluster.expect("on");
        assert_eq!(c.name, "farmgate");
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.key("admin"), "farmgate:farmgate:admin");
        let off = format!("{BASE}cluster:\n  enabled: false\n  redis: redis://x\n");
        assert!(load(&off).expect("valid").cluster.is_none());
    }

    #[test]
    fn bad_values_are_placed() {
        let bad = format!("{BASE}cluster:\n  redis: [\"http://x\"]\n  timeout: 0s\n  password_file: /nonexistent/pw\n");
        let errs = load(&bad).expect_err("invalid");
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("f.yaml:8:11: cluster.redis[0]: \"http://x\" is not a Redis URL")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("cluster.timeout: must be more than zero")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("cluster.password_file: cannot read /nonexistent/pw")),
            "{errs:#?}"
        );
    }

    #[test]
    fn tier_hash_covers_farms_not_binds() {
        let a = load(BASE).expect("valid");
        let moved = BASE.replace("127.0.0.1:0", "127.0.0.2:0");
        let b = load(&moved).expect("valid");
        assert_eq!(a.tier_hash, b.tier_hash, "bind addresses are per instance");
        let other = load(&BASE.replace("9001", "9002")).expect("valid");
        assert_ne!(a.tier_hash, other.tier_hash, "farms must agree");
        assert_eq!(a.tier_hash.len(), 16);
    }
}
