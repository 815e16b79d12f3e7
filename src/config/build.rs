//! Turns the parsed YAML ([`super::raw`]) into a validated runtime
//! [`Snapshot`]. Every problem is collected with its key path, so one
//! `farmgate check` lists them all.

use super::error::Problems;
use super::raw::*;
use super::snapshot::*;
use crate::compress::{self, FarmCompression, RuleSpecs};
use crate::farm::affinity::{self, Affinity, AffinitySpec};
use crate::farm::hash_key::HashKey;
use crate::farm::{selection, Farm, Server, StateRegistry};
use crate::health::{FarmHealth, HealthRegistry};
use crate::proxy::pool::PoolRegistry;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds a snapshot, reusing long-lived server state from `registry`.
pub fn build(raw: RawConfig, file: &str, registry: &StateRegistry) -> Result<Snapshot, Problems> {
    let mut p = Problems::default();

    let cluster = super::cluster::build(raw.cluster.as_ref(), &mut p).map(Arc::new);
    let limits = crate::limits::config::compile(
        &raw.limits,
        &registry.attached::<crate::limits::LimitRegistry>(),
        cluster.as_deref().map(super::cluster::limit_hasher),
        &mut p,
    );
    let listeners = build_listeners(&raw.listeners, &limits, &mut p);
    let admin = build_admin(&raw.admin, &mut p);
    if admin.enabled && admin.bind.port() != 0 && listeners.iter().any(|l| l.bind == admin.bind) {
        p.add(
            "admin.bind",
            "the admin listener must not share a traffic listener's address",
        );
    }
    let proxy = crate::proxy::spec::build(&raw.proxy, &mut p);
    let log = crate::log::spec::build(&raw.log, &mut p);
    let trace = raw
        .trace
        .as_ref()
        .map(|t| crate::trace::spec::build(t, &mut p));
    if raw.runtime.worker_threads == Some(0) {
        p.add("runtime.worker_threads", "must be at least 1");
    }
    let http1 = match raw.runtime.http1.as_deref() {
        None => Http1Server::default(),
        Some(name) => Http1Server::parse(name).unwrap_or_else(|| {
            p.add(
                "runtime.http1",
                format!("unknown value {name:?}; expected {}", Http1Server::NAMES),
            );
            Http1Server::default()
        }),
    };
    let runtime = RuntimeSpec {
        http1,
        worker_threads: raw.runtime.worker_threads,
        shutdown_timeout: raw
            .runtime
            .shutdown_timeout
            .map_or(Duration::from_secs(30), |d| d.0),
        pid_file: raw.runtime.pid_file.as_ref().map(std::path::PathBuf::from),
    };

    let resolve = crate::farm::resolve::config::compile(&raw.resolve, base_dir(file), &mut p);
    let mut dns = super::servers::Dns {
        spec: &resolve,
        names: registry.attached::<crate::farm::resolve::NameRegistry>(),
        warnings: Problems::default(),
    };
    let farms = build_farms(&raw.farms, registry, &limits, &mut dns, &mut p);
    let warnings = dns
        .warnings
        .0
        .into_iter()
        .map(|(path, message)| super::ConfigError {
            file: file.to_string(),
            line: 0,
            column: 0,
            path,
            message,
        })
        .collect();
    let farm_tls: Vec<_> = raw
        .farms
        .iter()
        .map(|f| crate::tls::spec::FarmTlsInput {
            name: &f.name,
            addresses: f.servers.iter().map(|s| s.address.as_str()).collect(),
            tls: f.tls.as_ref(),
        })
        .collect();
    let backend_tls = Arc::new(crate::tls::spec::build_backend_tls(&farm_tls, &mut p));
    let default_farm = match &raw.default_farm {
        Some(name) => {
            let idx = farms.iter().position(|f| &*f.name == name.as_str());
            if idx.is_none() {
                p.add("default_farm", format!("unknown farm {name:?}"));
            }
            idx
        }
        None if farms.len() == 1 => Some(0),
        None => None,
    };
    let farm_names: Vec<&str> = farms.iter().map(|f| &*f.name).collect();
    let maps = crate::rules::maps::compile(&raw.rewrite_maps, base_dir(file), &mut p);
    let sources = maps.files.clone();
    let rules = crate::rules::compile(&raw.rules, maps, &farm_names, &limits, &mut p);
    let rule_compression = build_rule_compression(&raw.rules, &mut p);
    if cluster.is_none() {
        for (i, f) in raw.farms.iter().enumerate() {
            if f.cache
                .as_ref()
                .is_some_and(|c| c.shared == Some(true) && c.enabled != Some(false))
            {
                p.add(
                    format!("farms[{i}].cache.shared"),
                    "the shared cache tier needs a cluster: section (its Redis)",
                );
            }
        }
    }

    if p.is_empty() {
        Ok(Snapshot {
            file: file.to_string(),
            listeners,
            admin,
            proxy,
            log,
            trace,
            runtime,
            farms,
            default_farm,
            rules,
            rule_compression,
            backend_tls,
            sources,
            limits,
            cluster,
            tier_hash: String::new(),
            resolve: Arc::new(resolve),
            rebuild: Rebuild::none(file),
            warnings,
        })
    } else {
        Err(p)
    }
}

/// The directory relative paths in the config file are taken from.
pub fn base_dir(file: &str) -> &std::path::Path {
    std::path::Path::new(file)
        .parent()
        .unwrap_or(std::path::Path::new(""))
}

fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("{text:?} is not an IP address and port (e.g. \"127.0.0.1:8080\" or \"[::]:443\")")
    })
}

fn build_listeners(
    raw: &[RawListener],
    limits: &crate::limits::Limits,
    p: &mut Problems,
) -> Vec<ListenerSpec> {
    if raw.is_empty() {
        p.add(
            "listeners",
            "at least one listener is needed (e.g. bind: \"127.0.0.1:8080\")",
        );
    }
    let mut seen_binds = HashSet::new();
    let mut seen_names = HashSet::new();
    let mut out = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let name = l.name.clone().unwrap_or_else(|| l.bind.clone());
        if !seen_names.insert(name.clone()) {
            p.add(
                format!("listeners[{i}].name"),
                format!("duplicate listener name {name:?}"),
            );
        }
        let tls = l.tls.as_ref().and_then(|t| {
            crate::tls::spec::build_listener_tls(t, &format!("listeners[{i}].tls"), p)
        });
        match parse_bind(&l.bind) {
            Ok(bind) => {
                if bind.port() != 0 && !seen_binds.insert(bind) {
                    p.add(
                        format!("listeners[{i}].bind"),
                        format!("another listener already binds {bind}"),
                    );
                }
                let max_connections = l
                    .max_connections
                    .unwrap_or(ClientLimits::DEFAULT_MAX_CONNECTIONS);
                if max_connections == 0 {
                    p.add(
                        format!("listeners[{i}].max_connections"),
                        "must be at least 1",
                    );
                }
                let proxy_protocol = l.proxy_protocol.as_ref().map(|pp| {
                    let key = format!("listeners[{i}].proxy_protocol.trusted_sources");
                    if pp.trusted_sources.is_empty() {
                        p.add(
                            key.clone(),
                            "name the balancers that connect (addresses or CIDRs)",
                        );
                    }
                    crate::ground::net::parse_nets(&pp.trusted_sources, &key, p).into()
                });
                if l.max_connections_per_ip
                    .is_some_and(|n| !(1..=65_535).contains(&n))
                {
                    p.add(
                        format!("listeners[{i}].max_connections_per_ip"),
                        "must be between 1 and 65535",
                    );
                }
                let access = l.access.as_ref().map(|a| {
                    Arc::new(crate::limits::access::compile(
                        a,
                        &format!("listeners[{i}].access"),
                        p,
                    ))
                });
                out.push(ListenerSpec {
                    name: name.into(),
                    bind,
                    tls,
                    max_connections,
                    proxy_protocol,
                    max_connections_per_ip: l.max_connections_per_ip,
                    limits: limits.resolve(&l.limits, &format!("listeners[{i}].limits"), p),
                    access,
                });
            }
            Err(e) => p.add(format!("listeners[{i}].bind"), e),
        }
    }
    if out.iter().all(|l| l.tls.is_some()) {
        let http01 = |l: &ListenerSpec| {
            l.tls
                .as_ref()
                .and_then(|t| t.acme.as_ref())
                .is_some_and(|a| a.challenge == crate::tls::acme::config::ChallengeKind::Http01)
        };
        if let Some(i) = out.iter().position(http01) {
            p.add(
                format!("listeners[{i}].tls.acme.challenge"),
                "http-01 is answered on a plain HTTP listener (port 80) and there is none; \
                 add one, or use tls-alpn-01",
            );
        }
    }
    out
}

fn build_admin(raw: &RawAdmin, p: &mut Problems) -> AdminSpec {
    let bind = parse_bind(&raw.bind).unwrap_or_else(|e| {
        p.add("admin.bind", e);
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    let token = secret(
        raw.token.as_deref(),
        raw.token_file.as_deref(),
        "admin.token",
        p,
    );
    if token.as_deref() == Some("") {
        p.add("admin.token", "the admin token must not be empty");
    }
    let enabled = raw.enabled.unwrap_or(true);
    if enabled && token.is_none() && !bind.ip().is_loopback() {
        p.add(
            "admin.bind",
            format!(
                "the admin listener binds {bind}, which is not loopback, without a token; \
                 set admin.token or admin.token_file, or bind 127.0.0.1"
            ),
        );
    }
    AdminSpec {
        enabled,
        bind,
        token,
    }
}

/// A secret given inline (`key`) or read from a file (`key_file`, for
/// Docker and Kubernetes secrets; trailing whitespace dropped), not both.
fn secret(
    inline: Option<&str>,
    file: Option<&std::path::Path>,
    key: &str,
    p: &mut Problems,
) -> Option<String> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(
                format!("{key}_file"),
                format!("give either {key} or {key}_file, not both"),
            );
            None
        }
        (Some(t), None) => Some(t.to_string()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t.trim_end().to_string()),
            Err(e) => {
                p.add(
                    format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        },
        (None, None) => None,
    }
}

fn build_farms(
    raw: &[RawFarm],
    registry: &StateRegistry,
    limits: &crate::limits::Limits,
    dns: &mut super::servers::Dns<'_>,
    p: &mut Problems,
) -> Vec<FarmRuntime> {
    if raw.is_empty() {
        p.add("farms", "at least one farm with servers is needed");
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (fi, f) in raw.iter().enumerate() {
        let at = format!("farms[{fi}]");
        if f.name.trim().is_empty() {
            p.add(format!("{at}.name"), "a farm needs a name");
        } else if !names.insert(f.name.as_str()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate farm name {:?}", f.name),
            );
        }
        let (servers, joined) = super::servers::build(f, &at, registry, dns, p);
        let raw_health = crate::health::spec::RawHealth {
            farm: &f.name,
            servers: f.servers.len(),
            health_check: f.health_check.as_ref(),
            live_traffic: f.live_traffic.as_ref(),
            min_servers: f.min_servers,
            slow_start: f.slow_start,
        };
        let health = crate::health::spec::compile(raw_health, &at, p);
        let algorithm = f
            .algorithm
            .clone()
            .unwrap_or_else(|| selection::DEFAULT_ALGORITHM.to_string());
        let hash_key = build_hash_key(f, &algorithm, &at, p);
        let affinity = f
            .affinity
            .as_ref()
            .and_then(|a| build_affinity(a, &f.name, &servers, &at, p));
        match selection::build(&algorithm, &servers) {
            Ok(policy) => {
                let health = FarmHealth::new(
                    f.name.as_str().into(),
                    health,
                    &servers,
                    &registry.attached::<HealthRegistry>(),
                );
                for i in joined {
                    health.joined(i);
                }
                let pools = registry.attached::<PoolRegistry>();
                let pools = servers.iter().map(|s| pools.for_server(s)).collect();
                out.push(FarmRuntime {
                    farm: Farm {
                        name: f.name.as_str().into(),
                        algorithm,
                        servers,
                        policy,
                        hash_key,
                        affinity,
                    },
                    health: Arc::new(health),
                    cache: build_cache(f, &at, registry, p),
                    compression: build_compression(f, &at, registry, p),
                    pools,
                    backend_idle_timeout: f
                        .backend_idle_timeout
                        .map_or(DEFAULT_BACKEND_IDLE_TIMEOUT, |d| d.0),
                    protocol: {
                        let protocol = f.protocol.unwrap_or_default();
                        if f.proxy_protocol.is_some()
                            && protocol != crate::proxy::protocol::RawProtocol::Http1
                        {
                            p.add(
                                format!("{at}.proxy_protocol"),
                                "the PROXY protocol names one client per connection; it needs `protocol: http1` (an HTTP/2 connection carries many clients)",
                            );
                        }
                        protocol.into()
                    },
                    grpc_retry_on: {
                        let on = crate::proxy::grpc::RetryOn::new(&f.grpc_retry_on);
                        if !on.is_empty() && f.protocol.unwrap_or_default()
                            == crate::proxy::protocol::RawProtocol::Http1
                        {
                            p.add(
                                format!("{at}.grpc_retry_on"),
                                "gRPC needs HTTP/2 to the servers: set `protocol: http2` (or `auto`)",
                            );
                        }
                        on
                    },
                    limits: limits.resolve(&f.limits, &format!("{at}.limits"), p),
                    send_proxy: f.proxy_protocol.map(|v| match v {
                        RawSendProxy::V1 => crate::proxy::send_proxy::Version::V1,
                        RawSendProxy::V2 => crate::proxy::send_proxy::Version::V2,
                    }),
                    relay_interim: f.interim_responses.unwrap_or_default()
                        == crate::proxy::interim::RawInterim::Relay,
                })
            }
            Err(e) => p.add(format!("{at}.algorithm"), e),
        }
    }
    out
}

/// The farm's `compression` section, and its counters either way (a rule
/// can turn compression on for a farm that has none).
fn build_compression(
    f: &RawFarm,
    at: &str,
    registry: &StateRegistry,
    p: &mut Problems,
) -> FarmCompression {
    FarmCompression {
        spec: f
            .compression
            .as_ref()
            .and_then(|c| compress::config::build(c, &format!("{at}.compression"), p)),
        stats: registry
            .attached::<compress::StatsRegistry>()
            .get_or_create(&f.name),
    }
}

/// The rules' `compression` sections, by rule index: compiled here, since
/// `rules/` sits below the compression stage.
fn build_rule_compression(raw: &[RawRule], p: &mut Problems) -> RuleSpecs {
    let by_rule = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let c = r.compression.as_ref()?;
            Some(compress::config::build(
                c,
                &format!("rules[{i}].compression"),
                p,
            ))
        })
        .collect();
    RuleSpecs::new(by_rule)
}

fn build_cache(
    f: &RawFarm,
    at: &str,
    registry: &StateRegistry,
    p: &mut Problems,
) -> Option<crate::cache::FarmCache> {
    let raw = f.cache.as_ref()?;
    let at = format!("{at}.cache");
    let targeted = Arc::new(crate::cache::config::build_targeted(raw, &at, p));
    let spec = crate::cache::config::build(raw, &at, p)?;
    let store = registry
        .attached::<crate::cache::CacheRegistry>()
        .get_or_create(&f.name, &spec);
    Some(crate::cache::FarmCache {
        spec,
        store,
        targeted,
    })
}

/// `hash_key` belongs to `algorithm: hash` (default `client_ip`).
fn build_hash_key(f: &RawFarm, algorithm: &str, at: &str, p: &mut Problems) -> Option<HashKey> {
    if algorithm != "hash" {
        if f.hash_key.is_some() {
            p.add(
                format!("{at}.hash_key"),
                format!("hash_key is only used by algorithm: hash (this farm uses {algorithm})"),
            );
        }
        return None;
    }
    match HashKey::parse(f.hash_key.as_deref().unwrap_or("client_ip")) {
        Ok(k) => Some(k),
        Err(e) => {
            p.add(format!("{at}.hash_key"), e);
            None
        }
    }
}

fn build_affinity(
    a: &RawAffinity,
    farm: &str,
    servers: &[Server],
    at: &str,
    p: &mut Problems,
) -> Option<Affinity> {
    let before = p.0.len();
    if let Err(e) = affinity::validate_cookie_name(&a.cookie) {
        p.add(format!("{at}.affinity.cookie"), e);
    }
    if a.ttl.is_some_and(|t| t.0.is_zero()) {
        p.add(
            format!("{at}.affinity.ttl"),
            "must be greater than 0; leave it out for a session cookie",
        );
    }
    let secret = secret(
        a.secret.as_deref(),
        a.secret_file.as_deref(),
        &format!("{at}.affinity.secret"),
        p,
    );
    if secret.as_deref() == Some("") {
        p.add(
            format!("{at}.affinity.secret"),
            "must not be empty; leave it out to derive the cookie from farm and server names",
        );
    }
    if p.0.len() > before {
        return None;
    }
    let spec = AffinitySpec {
        cookie: a.cookie.clone(),
        ttl: a.ttl.map(|t| t.0),
        secret,
    };
    Affinity::new(&spec, farm, servers)
        .map_err(|e| p.add(format!("{at}.affinity"), e))
        .ok()
}

/// `farms[].backend_idle_timeout` when not set: below the shortest
/// keep-alive of common application servers (gunicorn 2 s; Node.js, Apache
/// and uvicorn 5 s), so that we retire an idle connection before the server
/// closes it under a request. A busy farm reuses its connections long before
/// this; a quiet one pays a reconnect (well under a millisecond on a LAN).
pub const DEFAULT_BACKEND_IDLE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Limits' state hangs on the state registry like the other long-lived
/// registries, and is pruned with them.
impl crate::farm::Prune for crate::limits::LimitRegistry {
    fn prune(&self) {
        crate::limits::LimitRegistry::prune(self);
    }
}
