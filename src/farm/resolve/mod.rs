//! Servers named by DNS: a server whose address names a host
//! (`api.internal:8080`) stands for every address the name resolves to.
//! Each address is a member of the farm under a stable name
//! (`api.internal:8080#10.0.0.7:8080`), so its health, counters and pool
//! are kept by identity across re-resolutions like any server's.
//!
//! This module owns the long-lived record of each name ([`DnsName`]: the
//! last answer, kept when a lookup fails), the registry of names
//! ([`NameRegistry`], attached to the `StateRegistry`), and the resolver
//! seam ([`Resolver`]): the system resolver, or a hosts-style file the
//! `resolve:` section names (`config.rs`, `hosts.rs`). Re-resolving on a
//! schedule and rebuilding the snapshot when an answer changes is the
//! reload task's (`reload.rs`); expanding a server into members is the
//! config build's.
//!
//! The system resolver (`getaddrinfo`) reports no TTL, and a hosts file
//! has none: a name is looked up again every `resolve_interval`.

pub mod config;
pub mod hosts;

pub use config::{RawResolve, ResolveSpec};

use super::Prune;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a name is looked up again when neither the farm nor the
/// server sets `resolve_interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Looks host names up. Blocking: called from the config build and from
/// `spawn_blocking`, never on the request path.
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Every address `host` has now (at least one), or why not.
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String>;
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, DNS, as
/// `nsswitch.conf` says).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        use std::net::ToSocketAddrs;
        let addrs = (host, 0u16).to_socket_addrs().map_err(|e| e.to_string())?;
        let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        if ips.is_empty() {
            return Err("no addresses".into());
        }
        Ok(ips)
    }
}

/// Is `host` (as an authority shows it, IPv6 in brackets) a host name,
/// not an IP address?
pub fn is_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_err()
}

/// The member name of `server` at `addr`: `api.internal:8080#10.0.0.7:8080`.
pub fn member_name(server: &str, addr: SocketAddr) -> String {
    format!("{server}#{addr}")
}

/// What a member of a DNS-named server carries: the name it came from and
/// how often that is looked up again.
#[derive(Debug, Clone)]
pub struct Resolving {
    /// The address of the name this member connects to (None: the name
    /// has not resolved; the server is tried by name).
    pub addr: Option<SocketAddr>,
    pub name: Arc<DnsName>,
    pub interval: Duration,
    /// The server as configured (its `name`, or its address), whose
    /// members this one is.
    pub parent: Arc<str>,
}

/// How a lookup turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Same addresses as before.
    Same,
    /// A first answer, or addresses joined or left.
    Changed,
    /// The lookup failed; the last answer (if any) stays.
    Failed,
}

/// One host name: its last answer and lookup counters, kept across
/// snapshots while a server names it.
#[derive(Debug)]
pub struct DnsName {
    pub host: Arc<str>,
    state: Mutex<NameState>,
    pub lookups: AtomicU64,
    pub failures: AtomicU64,
    /// Answers that differed from the one before (the first one counts).
    pub changes: AtomicU64,
}

#[derive(Debug, Default)]
struct NameState {
    /// Sorted, without duplicates.
    answer: Option<Arc<[IpAddr]>>,
    /// When the name was last looked up, whatever came of it.
    looked_up: Option<Instant>,
    looked_up_unix_ms: u64,
    /// The error of the failing streak under way, if one is.
    error: Option<String>,
}

/// A name as the status API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NameView {
    pub name: String,
    pub addresses: Vec<String>,
    pub looked_up_unix_ms: u64,
    /// The last lookup failed (the addresses are the last good answer).
    pub failing: bool,
    pub error: Option<String>,
    pub lookups: u64,
    pub failures: u64,
    pub changes: u64,
}

impl DnsName {
    pub fn new(host: &str) -> Self {
        DnsName {
            host: host.into(),
            state: Mutex::default(),
            lookups: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            changes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NameState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last good answer, if there ever was one.
    pub fn answer(&self) -> Option<Arc<[IpAddr]>> {
        self.lock().answer.clone()
    }

    /// The last answer, or one looked up now for a name never looked up
    /// (the config build's question). `Err`: no answer at all.
    pub fn answer_or_lookup(&self, resolver: &dyn Resolver) -> Result<Arc<[IpAddr]>, String> {
        {
            let s = self.lock();
            if let Some(a) = &s.answer {
                return Ok(a.clone());
            }
            if let (Some(t), Some(e)) = (s.looked_up, &s.error) {
                // Failed a moment ago (another farm naming it, or the
                // task): not asked again within this build.
                if t.elapsed() < Duration::from_secs(1) {
                    return Err(e.clone());
                }
            }
        }
        self.lookup(resolver);
        let s = self.lock();
        match &s.answer {
            Some(a) => Ok(a.clone()),
            None => Err(s.error.clone().unwrap_or_else(|| "no answer".into())),
        }
    }

    /// Is a lookup due, `interval` after the last one?
    pub fn due(&self, interval: Duration, now: Instant) -> bool {
        self.lock()
            .looked_up
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }

    /// How long until a lookup is due, `interval` after the last one.
    pub fn wait(&self, interval: Duration, now: Instant) -> Duration {
        match self.lock().looked_up {
            Some(t) => (t + interval).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Looks the name up now and keeps the answer. A failure keeps the
    /// last answer and is logged once per failing streak.
    pub fn lookup(&self, resolver: &dyn Resolver) -> Lookup {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let result = resolver.lookup(&self.host);
        let mut s = self.lock();
        s.looked_up = Some(Instant::now());
        s.looked_up_unix_ms = unix_ms();
        match result {
            Ok(mut ips) => {
                ips.sort();
                ips.dedup();
                if s.error.take().is_some() {
                    tracing::info!(name = %self.host, "host name resolves again: {}", list(&ips));
                }
                if s.answer.as_deref() == Some(&ips[..]) {
                    return Lookup::Same;
                }
                if let Some(old) = &s.answer {
                    tracing::info!(name = %self.host, "host name now resolves to {} (was {})",
                        list(&ips), list(old));
                }
                s.answer = Some(ips.into());
                self.changes.fetch_add(1, Ordering::Relaxed);
                Lookup::Changed
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if s.error.is_none() {
                    match &s.answer {
                        Some(a) => tracing::warn!(name = %self.host,
                            "host name lookup failed: {e}; keeping its last answer ({})", list(a)),
                        None => tracing::warn!(name = %self.host,
                            "host name lookup failed: {e}; it has no address yet"),
                    }
                }
                s.error = Some(e);
                Lookup::Failed
            }
        }
    }

    pub fn view(&self) -> NameView {
        let s = self.lock();
        NameView {
            name: self.host.to_string(),
            addresses: s
                .answer
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect(),
            looked_up_unix_ms: s.looked_up_unix_ms,
            failing: s.error.is_some(),
            error: s.error.clone(),
            lookups: self.lookups.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
        }
    }
}

fn list(ips: &[IpAddr]) -> String {
    let v: Vec<String> = ips.iter().map(ToString::to_string).collect();
    v.join(", ")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Every host name a snapshot's servers name, by name (lower case).
/// Touched when snapshots are built and by the re-resolving task, never
/// per request.
#[derive(Debug, Default)]
pub struct NameRegistry {
    map: Mutex<HashMap<String, Arc<DnsName>>>,
}

impl NameRegistry {
    /// The record of `host`, made the first time it is named.
    pub fn get_or_create(&self, host: &str) -> Arc<DnsName> {
        let key = host.to_ascii_lowercase();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.clone())
            .or_insert_with(|| Arc::new(DnsName::new(&key)))
            .clone()
    }

    /// Every name in use, sorted.
    pub fn all(&self) -> Vec<Arc<DnsName>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.values().cloned().collect();
        v.sort_by(|a, b| a.host.cmp(&b.host));
        v
    }
}

impl Prune for NameRegistry {
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, n| Arc::strong_count(n) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Mutex<Result<Vec<IpAddr>, String>>);
    impl Resolver for Fixed {
        fn lookup(&self, _: &str) -> Result<Vec<IpAddr>, String> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_answer() {
        let r = Fixed(Mutex::new(Ok(vec![
            ip("10.0.0.2"),
            ip("10.0.0.1"),
            ip("10.0.0.2"),
        ])));
        let n = DnsName::new("api.internal");
        assert_eq!(n.lookup(&r), Lookup::Changed);
        assert_eq!(
            &n.answer().unwrap_or_else(|| unreachable!())[..],
            [ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(n.lookup(&r), Lookup::Same);
        *r.0.lock().unwrap_or_else(|p| p.into_inner()) = Err("NXDOMAIN".into());
        assert_eq!(n.lookup(&r), Lookup::Failed);
        assert_eq!(n.lookup(&r), Lookup::Failed);
        let v = n.view();
        assert_eq!(v.addresses, ["10.0.0.1", "10.0.0.2"]);
        assert!(v.failing);
        assert_eq!((v.lookups, v.failures, v.changes), (4, 2, 1));
        *r.0.lock().unwrap_or_else(|p| p.into_inner()) = Ok(vec![ip("10.0.0.1")]);
        assert_eq!(n.lookup(&r), Lookup::Changed);
        assert!(!n.view().failing);
    }

    #[test]
    fn names_and_addresses_told_apart() {
        assert!(is_name("api.internal"));
        assert!(is_name("localhost"));
        assert!(!is_name("10.0.0.7"));
        assert!(!is_name("[::1]"));
        let a: SocketAddr = "[fd00::7]:8080".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(member_name("api:8080", a), "api:8080#[fd00::7]:8080");
    }
}
