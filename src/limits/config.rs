//! The `limits:` section: raw serde types, their compiler, and the
//! runtime [`Limit`] a snapshot holds. A limit's state (its key store,
//! in-flight table and counters) lives in [`LimitRegistry`] by name, so it
//! survives reloads; a reload that changes `rate` keeps every key's TAT
//! (read under the new rate), one that changes `max_keys`, `scope` or
//! `sync_max_keys` starts afresh.

use super::access::NetSet;
use super::cluster::{ClusterStore, DEFAULT_SYNC_MAX_KEYS};
use super::gcra::Rate;
use super::inflight::InFlight;
use super::key::{KeyHasher, LimitKey};
use super::store::{KeyStore, LocalStore};
use crate::ground::error::Problems;
use crate::ground::units::Dur;
use http::{HeaderValue, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keys a limit tracks unless `max_keys` says otherwise (131,072 slots
/// once rounded: 2 MiB).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// One entry of `limits:` as written.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    pub name: String,
    /// client_ip | header:NAME | cookie:NAME | query:NAME | path | {R:n}
    #[serde(default)]
    pub key: Option<String>,
    /// `N/s`, `N/min` or `N/h`.
    pub rate: String,
    /// Requests a key may send at once (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
    /// The answer to a limited request (default 429).
    #[serde(default)]
    pub status: Option<u16>,
    /// Clients never limited (addresses or CIDRs).
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Requests a key may have in flight at once.
    #[serde(default)]
    pub concurrent: Option<u32>,
    /// The most keys tracked (16 bytes each; rounded up to a power of two).
    #[serde(default)]
    pub max_keys: Option<usize>,
    /// `local` (the default): each instance counts alone. `cluster`: the
    /// tier of the `cluster:` section admits about `rate` in total.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// `scope: cluster`: how often counts are exchanged with the tier
    /// (100ms to 500ms). Default 250ms.
    #[serde(default)]
    pub sync_interval: Option<Dur>,
    /// `scope: cluster`: the most keys exchanged per interval (the first
    /// keys active in it); the others count locally until a later one.
    /// Default 10000.
    #[serde(default)]
    pub sync_max_keys: Option<usize>,
}

/// Where a limit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Local,
    Cluster,
}

/// How a `scope: cluster` limit exchanges counts with the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSpec {
    pub interval: Duration,
    pub max_keys: usize,
}

/// `sync_interval` unless set.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// A limit as a snapshot holds it.
#[derive(Debug)]
pub struct Limit {
    pub name: Arc<str>,
    pub key: LimitKey,
    pub rate: Rate,
    pub status: StatusCode,
    pub exempt: NetSet,
    pub concurrent: Option<u32>,
    /// `RateLimit-Policy`, rendered once.
    pub policy: HeaderValue,
    /// How keys become hashes: a tier-wide key under `scope: cluster`.
    pub hasher: KeyHasher,
    /// `scope: cluster`: the exchange with the tier.
    pub sync: Option<SyncSpec>,
    pub state: Arc<LimitState>,
}

/// What a limit keeps across reloads.
#[derive(Debug)]
pub struct LimitState {
    pub store: Arc<dyn KeyStore>,
    pub inflight: Arc<InFlight>,
    pub allowed: AtomicU64,
    pub limited: AtomicU64,
    /// Refused for having `concurrent` requests in flight already.
    pub concurrent_refused: AtomicU64,
    /// `scope: cluster`: the same store as `store`, with its sync side.
    pub cluster: Option<Arc<ClusterStore>>,
    shape: Shape,
}

/// What a limit's state is made for; another shape starts it afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    max_keys: usize,
    /// `scope: cluster`: its `sync_max_keys`.
    synced: Option<usize>,
}

impl LimitState {
    fn new(shape: Shape) -> LimitState {
        let cluster = shape
            .synced
            .map(|sync_max| Arc::new(ClusterStore::new(shape.max_keys, sync_max)));
        let store: Arc<dyn KeyStore> = match &cluster {
            Some(c) => c.clone(),
            None => Arc::new(LocalStore::new(shape.max_keys)),
        };
        LimitState {
            store,
            inflight: Arc::new(InFlight::new(shape.max_keys)),
            allowed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            concurrent_refused: AtomicU64::new(0),
            cluster,
            shape,
        }
    }

    pub fn allowed(&self) -> u64 {
        self.allowed.load(Relaxed)
    }
    pub fn limited(&self) -> u64 {
        self.limited.load(Relaxed)
    }
    pub fn concurrent_refused(&self) -> u64 {
        self.concurrent_refused.load(Relaxed)
    }
}

/// Every limit's state by name.
#[derive(Debug, Default)]
pub struct LimitRegistry {
    map: Mutex<HashMap<String, Arc<LimitState>>>,
}

impl LimitRegistry {
    /// A limit's state: its own across reloads, unless `max_keys` or (for
    /// `scope: cluster`, `synced`: its `sync_max_keys`) changed.
    pub fn get_or_create(
        &self,
        name: &str,
        max_keys: usize,
        synced: Option<usize>,
    ) -> Arc<LimitState> {
        let shape = Shape { max_keys, synced };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let state = map
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(LimitState::new(shape)));
        if state.shape != shape {
            *state = Arc::new(LimitState::new(shape));
        }
        state.clone()
    }

    /// Forgets limits no snapshot holds.
    pub fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| Arc::strong_count(s) > 1);
    }
}

/// The snapshot's limits, in file order.
#[derive(Debug, Default)]
pub struct Limits {
    list: Vec<Limit>,
}

impl Limits {
    pub fn get(&self, i: usize) -> Option<&Limit> {
        self.list.get(i)
    }
    pub fn index(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|l| &*l.name == name)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Limit> {
        self.list.iter()
    }
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Resolves a list of limit names at `at` (a listener's or farm's
    /// `limits`) to indexes; a rule capture key is refused there.
    pub fn resolve(&self, names: &[String], at: &str, p: &mut Problems) -> Box<[usize]> {
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match self.index(name) {
                Some(li) if matches!(self.list[li].key, LimitKey::RuleCapture(_)) => p.add(
                    format!("{at}[{i}]"),
                    format!("limit {name:?} counts by a rule's capture ({{R:n}}); use it from a rule's `limit` action"),
                ),
                Some(li) => out.push(li),
                None => p.add(format!("{at}[{i}]"), format!("unknown limit {name:?}")),
            }
        }
        out.into()
    }
}

/// Compiles `limits:`; each limit's state comes from `registry`. `tier`:
/// the tier's key hasher when a `cluster:` section is configured (which
/// `scope: cluster` needs).
pub fn compile(
    raw: &[RawLimit],
    registry: &LimitRegistry,
    tier: Option<KeyHasher>,
    p: &mut Problems,
) -> Limits {
    let mut list: Vec<Limit> = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let at = format!("limits[{i}]");
        let before = p.0.len();
        if r.name.trim().is_empty() {
            p.add(format!("{at}.name"), "a limit needs a name");
        } else if !names.insert(r.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate limit name {:?}", r.name),
            );
        }
        let key = LimitKey::parse(r.key.as_deref().unwrap_or("client_ip"))
            .map_err(|e| p.add(format!("{at}.key"), e))
            .ok();
        let per = parse_rate(&r.rate)
            .map_err(|e| p.add(format!("{at}.rate"), e))
            .ok();
        let status = r.status.unwrap_or(429);
        if !(400..=599).contains(&status) {
            p.add(
                format!("{at}.status"),
                format!("{status} is not an error status; use 4xx or 5xx (429 is usual)"),
            );
        }
        if r.burst == Some(0) {
            p.add(format!("{at}.burst"), "must be at least 1");
        }
        if let Some(c) = r.concurrent {
            if !(1..=65_535).contains(&c) {
                p.add(format!("{at}.concurrent"), "must be between 1 and 65535");
            }
        }
        let max_keys = r.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
        if !(1..=1 << 28).contains(&max_keys) {
            p.add(
                format!("{at}.max_keys"),
                "must be between 1 and 268435456 (16 bytes a key)",
            );
        }
        let mut exempt = NetSet::default();
        exempt.add_all(&r.exempt, &format!("{at}.exempt"), p);
        let sync = sync_spec(r, tier.is_some(), &at, p);
        let (Some(key), Some((count, period))) = (key, per) else {
            continue;
        };
        if p.0.len() > before {
            continue;
        }
        let per_second = (u64::from(count) * 1000).div_ceil(period.as_millis() as u64);
        let burst = r
            .burst
            .unwrap_or(u32::try_from(per_second).unwrap_or(u32::MAX).max(1));
        let Some(rate) = Rate::new(count, period, burst) else {
            p.add(format!("{at}.rate"), "too fast for this burst");
            continue;
        };
        list.push(Limit {
            name: r.name.as_str().into(),
            key,
            rate,
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            exempt,
            concurrent: r.concurrent,
            policy: policy_header(&r.name, &rate),
            hasher: match (sync, tier) {
                (Some(_), Some(t)) => t,
                _ => KeyHasher::Process,
            },
            sync,
            state: registry.get_or_create(&r.name, max_keys, sync.map(|s| s.max_keys)),
        });
    }
    Limits { list }
}

/// A limit's exchange with the tier, when `scope: cluster`; its keys
/// checked (`sync_*` without `scope: cluster` is refused, as it would do
/// nothing).
fn sync_spec(r: &RawLimit, tier: bool, at: &str, p: &mut Problems) -> Option<SyncSpec> {
    if r.scope != Some(Scope::Cluster) {
        for (key, set) in [
            ("sync_interval", r.sync_interval.is_some()),
            ("sync_max_keys", r.sync_max_keys.is_some()),
        ] {
            if set {
                p.add(
                    format!("{at}.{key}"),
                    "only a limit with `scope: cluster` syncs",
                );
            }
        }
        return None;
    }
    if !tier {
        p.add(
            format!("{at}.scope"),
            "`scope: cluster` needs a `cluster:` section (the tier's Redis)",
        );
    }
    let interval = r.sync_interval.map_or(DEFAULT_SYNC_INTERVAL, |d| d.0);
    if !(Duration::from_millis(100)..=Duration::from_millis(500)).contains(&interval) {
        p.add(
            format!("{at}.sync_interval"),
            "must be between 100ms and 500ms",
        );
    }
    let max_keys = r.sync_max_keys.unwrap_or(DEFAULT_SYNC_MAX_KEYS);
    if !(1..=1_000_000).contains(&max_keys) {
        p.add(
            format!("{at}.sync_max_keys"),
            "must be between 1 and 1000000",
        );
    }
    Some(SyncSpec { interval, max_keys })
}

/// `N/s`, `N/sec`, `N/min`, `N/m`, `N/h`, `N/hour`.
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let bad = || format!("{text:?} is not a rate; expected e.g. 100/s, 6000/min or 10000/h");
    let (n, unit) = text.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err("a rate must allow at least 1 request".into());
    }
    let period = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok((n, period))
}

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): the quota is
/// the burst, restored in full over `burst x interval`.
fn policy_header(name: &str, rate: &Rate) -> HeaderValue {
    let window = (rate.interval() * rate.burst()).as_secs().max(1);
    let text = format!("\"{}\";q={};w={window}", sf_string(name), rate.burst());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("\"limit\""))
}

/// A name as a structured-field string's content (quotes and backslashes
/// escaped, other non-printables dropped).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, rate: &str) -> RawLimit {
        RawLimit {
            name: name.into(),
            key: None,
            rate: rate.into(),
            burst: None,
            status: None,
            exempt: vec![],
            concurrent: None,
            max_keys: None,
            scope: None,
            sync_interval: None,
            sync_max_keys: None,
        }
    }

    #[test]
    fn rates_parse_and_burst_defaults_to_a_second() {
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("6000/min"), Ok((6000, Duration::from_secs(60))));
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("0/s").is_err());
        let reg = LimitRegistry::default();
        let mut p = Problems::default();
        let l = compile(
            &[raw("a", "6000/min"), raw("b", "10/min")],
            &reg,
            None,
            &mut p,
        );
        assert!(p.is_empty(), "{:?}", p.0);
        assert_eq!(l.get(0).map(|l| l.rate.burst()), Some(100));
        assert_eq!(l.get(1).map(|l| l.rate.burst()), Some(1));
        assert_eq!(
            l.get(0).map(|l| l.policy.clone()),
            Some(HeaderValue::from_static("\"a\";q=100;w=1"))
        );
    }

    #[test]
    fn problems_name_the_key() {
        let reg = LimitRegistry::default();
        let mut p = Problems::default();
        let mut r = raw("a", "fast");
        r.status = Some(200);
        r.key = Some("ip".into());
        let mut dup = raw("a", "1/s");
        dup.exempt = vec!["x".into()];
        compile(&[r, dup], &reg, None, &mut p);
        let keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "limits[0].key",
                "limits[0].rate",
                "limits[0].status",
                "limits[1].name",
                "limits[1].exempt[0]"
            ]
        );
    }

    #[test]
    fn state_survives_a_rebuild() {
        let reg = LimitRegistry::default();
        let mut p = Problems::default();
        let a = compile(&[raw("a", "1/s")], &reg, None, &mut p);
        let b = compile(&[raw("a", "5/s")], &reg, None, &mut p);
        let (a, b) = (a.get(0).expect("a"), b.get(0).expect("b"));
        assert!(Arc::ptr_eq(&a.state, &b.state));
    }

    #[test]
    fn cluster_scope_needs_the_tier_and_gets_its_hasher() {
        let reg = LimitRegistry::default();
        let mut c = raw("c", "10/s");
        c.scope = Some(Scope::Cluster);
        let mut p = Problems::default();
        compile(std::slice::from_ref(&c), &reg, None, &mut p);
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].0, "limits[0].scope");
        assert!(p.0[0].1.contains("cluster:"), "{}", p.0[0].1);

        let tier = KeyHasher::tier(b"t");
        let mut p = Problems::default();
        let l = compile(std::slice::from_ref(&c), &reg, Some(tier), &mut p);
        assert!(p.is_empty(), "{:?}", p.0);
        let l = l.get(0).expect("c");
        assert_eq!(l.hasher, tier);
        assert_eq!(
            l.sync,
            Some(SyncSpec {
                interval: DEFAULT_SYNC_INTERVAL,
                max_keys: DEFAULT_SYNC_MAX_KEYS
            })
        );
        assert!(l.state.cluster.is_some());

        // Back to local: a local store, the process's hasher.
        let l = compile(&[raw("c", "10/s")], &reg, Some(tier), &mut p);
        let l = l.get(0).expect("c");
        assert!(l.state.cluster.is_none());
        assert_eq!(l.hasher, KeyHasher::Process);

        let mut bad = raw("d", "10/s");
        bad.sync_interval = Some(Dur(Duration::from_millis(50)));
        let mut p = Problems::default();
        compile(std::slice::from_ref(&bad), &reg, Some(tier), &mut p);
        assert_eq!(p.0[0].0, "limits[0].sync_interval");
        bad.scope = Some(Scope::Cluster);
        let mut p = Problems::default();
        compile(&[bad], &reg, Some(tier), &mut p);
        assert_eq!(p.0[0].0, "limits[0].sync_interval");
        assert!(p.0[0].1.contains("100ms"));
    }
}
