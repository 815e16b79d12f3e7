//! IP allow and deny lists (`access:` on listeners and rules) and the
//! address sets behind them and behind a limit's `exempt`.
//!
//! A list is CIDRs and addresses written inline and/or read from files
//! (one per line, `#` comments), read when the config is built, so a
//! reload (SIGHUP, the admin API) rereads the files. A [`NetSet`] keeps
//! one hash set of network addresses per prefix length present, so a
//! lookup costs one probe per distinct prefix length whatever the size of
//! the list (a 100,000-line blocklist of /32s and /24s is two probes).

use crate::ground::error::Problems;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

/// `access:` as written.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    /// Only these clients are served (addresses or CIDRs).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Files of addresses or CIDRs to allow, one a line.
    #[serde(default)]
    pub allow_files: Vec<PathBuf>,
    /// These clients are refused, even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Files of addresses or CIDRs to refuse, one a line.
    #[serde(default)]
    pub deny_files: Vec<PathBuf>,
}

/// A compiled access list: deny wins; a non-empty allow list refuses
/// everyone it does not name.
#[derive(Debug, Default, Clone)]
pub struct AccessList {
    allow: Option<NetSet>,
    deny: NetSet,
}

impl AccessList {
    #[inline]
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty()
    }

    /// A client whose address is unknown passes a deny list only.
    pub fn permits_unknown(&self) -> bool {
        self.allow.is_none()
    }
}

/// Compiles `access` at key path `at`; problems name the entry or the
/// file and line.
pub fn compile(raw: &RawAccess, at: &str, p: &mut Problems) -> AccessList {
    let mut allow = NetSet::default();
    allow.add_all(&raw.allow, &format!("{at}.allow"), p);
    for (i, f) in raw.allow_files.iter().enumerate() {
        allow.add_file(f, &format!("{at}.allow_files[{i}]"), p);
    }
    let mut deny = NetSet::default();
    deny.add_all(&raw.deny, &format!("{at}.deny"), p);
    for (i, f) in raw.deny_files.iter().enumerate() {
        deny.add_file(f, &format!("{at}.deny_files[{i}]"), p);
    }
    let allow_given = !raw.allow.is_empty() || !raw.allow_files.is_empty();
    AccessList {
        allow: allow_given.then_some(allow),
        deny,
    }
}

/// A set of networks with a lookup independent of its size.
#[derive(Debug, Default, Clone)]
pub struct NetSet {
    /// Prefix length and the networks of that length, longest first.
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl NetSet {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Does a network of the set hold `ip` (IPv4-mapped IPv6 as IPv4)?
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .any(|(len, nets)| nets.contains(&mask32(a, *len)))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .any(|(len, nets)| nets.contains(&mask128(a, *len)))
            }
        }
    }

    pub fn insert(&mut self, net: IpNet) {
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let a = mask32(u32::from(n.addr()), len);
                set_for(&mut self.v4, len).insert(a);
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let a = mask128(u128::from(n.addr()), len);
                set_for(&mut self.v6, len).insert(a);
            }
        }
    }

    /// Adds each entry of `list`; a bad one is a problem at `at[i]`.
    pub fn add_all(&mut self, list: &[String], at: &str, p: &mut Problems) {
        for (i, t) in list.iter().enumerate() {
            match parse_net(t) {
                Some(n) => self.insert(n),
                None => p.add(format!("{at}[{i}]"), not_a_net(t)),
            }
        }
    }

    /// Adds the entries of a file, one a line (`#` starts a comment).
    pub fn add_file(&mut self, path: &PathBuf, at: &str, p: &mut Problems) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return p.add(at, format!("cannot read {}: {e}", path.display())),
        };
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            match parse_net(entry) {
                Some(net) => self.insert(net),
                None => p.add(
                    at,
                    format!("{}:{}: {}", path.display(), n + 1, not_a_net(entry)),
                ),
            }
        }
    }
}

fn set_for<T>(list: &mut Vec<(u8, HashSet<T>)>, len: u8) -> &mut HashSet<T> {
    let i = match list.iter().position(|(l, _)| *l == len) {
        Some(i) => i,
        None => {
            list.push((len, HashSet::new()));
            list.sort_by_key(|e| std::cmp::Reverse(e.0));
            list.iter().position(|(l, _)| *l == len).unwrap_or(0)
        }
    };
    &mut list[i].1
}

#[inline]
fn mask32(a: u32, len: u8) -> u32 {
    a.checked_shr(32 - u32::from(len)).unwrap_or(0)
}

#[inline]
fn mask128(a: u128, len: u8) -> u128 {
    a.checked_shr(128 - u32::from(len)).unwrap_or(0)
}

/// An address or CIDR (a CIDR's host bits are ignored).
pub fn parse_net(t: &str) -> Option<IpNet> {
    let t = t.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
}

fn not_a_net(t: &str) -> String {
    format!("{t:?} is not an IP address or CIDR (e.g. \"10.0.0.0/8\")")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn sets_match_by_prefix() {
        let mut s = NetSet::default();
        for n in ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"] {
            s.insert(parse_net(n).expect("net"));
        }
        assert!(s.contains(ip("10.200.1.1")));
        assert!(s.contains(ip("::ffff:192.0.2.7")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::1")));
        assert!(s.contains(ip("8.8.8.8")), "/0 holds every IPv4 address");
    }

    #[test]
    fn deny_wins_and_allow_refuses_the_rest() {
        let mut p = Problems::default();
        let raw = RawAccess {
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["10.6.6.0/24".into(), "nonsense".into()],
            ..Default::default()
        };
        let a = compile(&raw, "listeners[0].access", &mut p);
        assert!(a.permits(ip("10.1.2.3")));
        assert!(!a.permits(ip("10.6.6.6")));
        assert!(!a.permits(ip("192.0.2.1")));
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].0, "listeners[0].access.deny[1]");
        let open = compile(&RawAccess::default(), "x", &mut p);
        assert!(open.is_empty() && open.permits(ip("192.0.2.1")));
    }
}
