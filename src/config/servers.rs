//! A farm's `servers` compiled. A server whose address names a host
//! stands for every address the name resolves to (`farm::resolve`): one
//! member per address, named `server#ip:port`, each with its own state,
//! health record and pool, found again by that name in later snapshots.

use super::error::Problems;
use super::raw::RawFarm;
use crate::farm::resolve::{self, NameRegistry, ResolveSpec, Resolving};
use crate::farm::{server::parse_address, Server, ServerKey, StateRegistry};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the build needs to expand DNS-named servers.
pub struct Dns<'a> {
    pub spec: &'a ResolveSpec,
    pub names: Arc<NameRegistry>,
    /// Warnings by key path: names that do not resolve now.
    pub warnings: Problems,
}

/// The servers of farm `f` (members in place of DNS-named servers), and
/// the indexes of members that joined the running farm: new addresses of
/// a name that had resolved before.
pub fn build(
    f: &RawFarm,
    at: &str,
    registry: &StateRegistry,
    dns: &mut Dns<'_>,
    p: &mut Problems,
) -> (Vec<Server>, Vec<usize>) {
    if f.servers.is_empty() {
        p.add(
            format!("{at}.servers"),
            format!("farm {:?} has no servers", f.name),
        );
    }
    if f.resolve_interval.is_some_and(|d| d.0.is_zero()) {
        p.add(format!("{at}.resolve_interval"), "must be greater than 0");
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    let mut joined = Vec::new();
    for (si, s) in f.servers.iter().enumerate() {
        let sat = format!("{at}.servers[{si}]");
        let name = s.name.clone().unwrap_or_else(|| s.address.clone());
        if !names.insert(name.clone()) {
            p.add(
                format!(
                    "{sat}.{}",
                    if s.name.is_some() { "name" } else { "address" }
                ),
                format!("duplicate server {name:?} in farm {:?}", f.name),
            );
        }
        if s.resolve_interval.is_some_and(|d| d.0.is_zero()) {
            p.add(format!("{sat}.resolve_interval"), "must be greater than 0");
        }
        let (scheme, authority) = match parse_address(&s.address) {
            Ok(parsed) => parsed,
            Err(e) => {
                p.add(format!("{sat}.address"), e);
                continue;
            }
        };
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .unwrap_or_else(|_| http::HeaderValue::from_static("localhost"));
        let server = |name: &str, state, dns| Server {
            name: name.into(),
            address: s.address.as_str().into(),
            scheme: scheme.clone(),
            authority: authority.clone(),
            host_header: host_header.clone(),
            weight: s.weight.unwrap_or(1),
            state,
            dns,
        };
        let key = |server: &str| ServerKey {
            farm: f.name.clone(),
            server: server.to_string(),
        };
        let host = authority.host();
        if !resolve::is_name(host) {
            out.push(server(&name, registry.get_or_create(&key(&name)), None));
            continue;
        }
        let interval = s
            .resolve_interval
            .or(f.resolve_interval)
            .map_or(resolve::DEFAULT_INTERVAL, |d| d.0);
        let dns_name = dns.names.get_or_create(host);
        let resolving = Resolving {
            addr: None,
            name: dns_name.clone(),
            interval,
            parent: name.as_str().into(),
        };
        match dns_name.answer_or_lookup(dns.spec) {
            Ok(ips) => {
                // The first answer makes the farm; a later one adds to it.
                let running = dns_name.changes.load(std::sync::atomic::Ordering::Relaxed) > 1;
                let port = authority.port_u16().unwrap_or(80);
                for ip in ips.iter() {
                    let addr = SocketAddr::new(*ip, port);
                    let member = resolve::member_name(&name, addr);
                    let (state, new) = registry.get_or_create_new(&key(&member));
                    if new && running {
                        joined.push(out.len());
                    }
                    let member_dns = Resolving {
                        addr: Some(addr),
                        ..resolving.clone()
                    };
                    out.push(server(&member, state, Some(Arc::new(member_dns))));
                }
            }
            Err(e) => {
                dns.warnings.add(
                    format!("{sat}.address"),
                    format!(
                        "{host} does not resolve now ({e}); until it does, the server is \
                         tried by name, and the name is looked up again every {}",
                        crate::ground::clock::human(interval)
                    ),
                );
                let state = registry.get_or_create(&key(&name));
                out.push(server(&name, state, Some(Arc::new(resolving))));
            }
        }
    }
    (out, joined)
}
