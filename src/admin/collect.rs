//! The Prometheus collectors: at scrape time they walk the CURRENT snapshot
//! (so a reload's new farms and servers appear, removed ones vanish) and
//! read the long-lived atomics behind it (server state and its health
//! record, farm stats, listener and TLS stats). Nothing here runs per request.

use super::process;
use crate::gateway::Gateway;
use crate::metrics::names::*;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Registers every collector with `gw`'s metrics; done once at start.
/// They hold the gateway weakly, so they do not keep it alive.
pub fn register(gw: &Arc<Gateway>) {
    let weak = Arc::downgrade(gw);
    gw.metrics
        .register(Box::new(ListenerCollector(weak.clone())));
    gw.metrics
        .register(Box::new(BackendCollector(weak.clone())));
    gw.metrics
        .register(Box::new(super::cluster::ClusterCollector(weak.clone())));
    gw.metrics.register(Box::new(ConfigCollector(weak)));
    gw.metrics.register(Box::new(ProcessCollector));
}

// === helpers ===

pub(super) fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

pub(super) fn gauges<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

pub(super) fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: V,
) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// The `{farm, server}` labels of one server.
fn key<'a>(farm: &'a str, s: &'a crate::farm::Server) -> [(&'static str, &'a str); 2] {
    [("farm", farm), ("server", &*s.name)]
}

// === impl BackendCollector ===

/// Per-server and per-farm metrics over the current snapshot.
#[derive(Debug)]
pub struct BackendCollector(pub Weak<Gateway>);

impl Collector for BackendCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(gw) = self.0.upgrade() else {
            return Ok(());
        };
        let snap = gw.snapshot();
        let servers: Vec<_> = snap
            .farms
            .iter()
            .flat_map(|f| f.servers.iter().map(move |s| (&*f.name, s)))
            .collect();
        // Each server's health record, in the same order.
        let health: Vec<_> = snap
            .farms
            .iter()
            .flat_map(|f| (0..f.servers.len()).map(|i| f.health.server(i)))
            .collect();
        let mut by_code = Vec::new();
        for (farm, s) in &servers {
            for (code, n) in s.state.stats.codes.iter() {
                by_code.push(([("farm", *farm), ("server", &*s.name)], code.to_string(), n));
            }
        }
        counters(
            &mut enc,
            BACKEND_REQUESTS,
            "Responses received from a server, by status code.",
            by_code
                .iter()
                .map(|(k, code, n)| ([k[0], k[1], ("code", code.as_str())], *n)),
        )?;
        let mut by_grpc = Vec::new();
        for (farm, s) in &servers {
            for (code, n) in s.state.stats.grpc_codes() {
                by_grpc.push(([("farm", *farm), ("server", &*s.name)], code.to_string(), n));
            }
        }
        counters(
            &mut enc,
            BACKEND_GRPC_RESPONSES,
            "gRPC calls a server answered, by grpc-status code.",
            by_grpc
                .iter()
                .map(|(k, code, n)| ([k[0], k[1], ("code", code.as_str())], *n)),
        )?;
        gauges(
            &mut enc,
            BACKEND_ACTIVE_REQUESTS,
            "Requests sent to a server whose response has not ended.",
            servers
                .iter()
                .map(|(f, s)| (key(f, s), s.state.in_flight())),
        )?;
        {
            let mut m = enc.encode_descriptor(
                BACKEND_RESPONSE_DURATION,
                "Time from sending a request to a server to its response headers.",
                None,
                MetricType::Histogram,
            )?;
            for (f, s) in &servers {
                let h = s.state.stats.latency.snapshot();
                m.encode_family(&key(f, s))?
                    .encode_histogram::<NoLabelSet>(
                        h.sum_seconds(),
                        h.count(),
                        &h.encoder_buckets(),
                        None,
                    )?;
            }
        }
        gauges(
            &mut enc,
            BACKEND_UP,
            "1 while the server takes new requests, 0 when it does not.",
            servers
                .iter()
                .map(|(f, s)| (key(f, s), u64::from(s.state.in_rotation()))),
        )?;
        gauges(
            &mut enc,
            BACKEND_STATE,
            "1 for the server's current state (healthy, unhealthy, draining, disabled).",
            servers.iter().flat_map(|(f, s)| {
                let now = s.state.state_name();
                STATES.iter().map(move |st| {
                    (
                        [("farm", *f), ("server", &*s.name), ("state", *st)],
                        u64::from(now == *st),
                    )
                })
            }),
        )?;
        counters(
            &mut enc,
            BACKEND_FAILURES,
            "Failed attempts to a server, by reason (connect, timeout, status, reset).",
            servers.iter().flat_map(|(f, s)| {
                crate::metrics::server::FailureReason::ALL
                    .into_iter()
                    .map(move |r| {
                        (
                            [("farm", *f), ("server", &*s.name), ("reason", r.as_str())],
                            s.state.stats.failures(r),
                        )
                    })
            }),
        )?;
        counters(
            &mut enc,
            BACKEND_SENT_BYTES,
            "Request body bytes sent to a server.",
            servers
                .iter()
                .map(|(f, s)| (key(f, s), s.state.bytes_sent.load(Ordering::Relaxed))),
        )?;
        counters(
            &mut enc,
            BACKEND_RECEIVED_BYTES,
            "Response body bytes received from a server.",
            servers
                .iter()
                .map(|(f, s)| (key(f, s), s.state.bytes_received.load(Ordering::Relaxed))),
        )?;
        counters(
            &mut enc,
            HEALTH_CHECKS,
            "Active health checks of a server, by result (pass, or why it failed).",
            servers.iter().zip(&health).flat_map(|((f, s), h)| {
                h.counters.checks_by_result().map(move |(result, n)| {
                    ([("farm", *f), ("server", &*s.name), ("result", result)], n)
                })
            }),
        )?;
        counters(
            &mut enc,
            BACKEND_HEALTH_TRANSITIONS,
            "Times the server left (down) or came back to (up) rotation for health reasons.",
            servers.iter().zip(&health).flat_map(|((f, s), h)| {
                let c = &h.counters;
                [
                    ("down", c.went_down.load(Ordering::Relaxed)),
                    ("up", c.came_back.load(Ordering::Relaxed)),
                ]
                .map(|(to, n)| ([("farm", *f), ("server", &*s.name), ("to", to)], n))
            }),
        )?;
        counters(
            &mut enc,
            BACKEND_LIVE_EJECTIONS,
            "Times live traffic took the server out of rotation.",
            servers
                .iter()
                .zip(&health)
                .map(|((f, s), h)| (key(f, s), h.counters.live_ejections.load(Ordering::Relaxed))),
        )?;

        // Farms.
        gauges(
            &mut enc,
            FARM_SERVERS_UP,
            "Servers of the farm that take new requests.",
            snap.farms.iter().map(|f| {
                let up = f.servers.iter().filter(|s| s.state.in_rotation()).count();
                ([("farm", &*f.name)], up as u64)
            }),
        )?;
        gauges(
            &mut enc,
            FARM_MIN_SERVERS_ACTIVE,
            "1 while the min_servers floor keeps unhealthy servers in rotation.",
            snap.farms
                .iter()
                .map(|f| ([("farm", &*f.name)], u64::from(f.health.floor_active()))),
        )?;
        // Only farms with a cache have cache series.
        let cached = || {
            snap.farms
                .iter()
                .filter_map(|f| f.cache.as_ref().map(|c| (f, c)))
        };
        counters(
            &mut enc,
            CACHE_REQUESTS,
            "Requests through the farm's response cache, by result.",
            cached().flat_map(|(f, c)| {
                crate::cache::CacheResult::ALL.into_iter().map(move |r| {
                    (
                        [("farm", &*f.name), ("result", r.as_str())],
                        c.store.stats.get(r),
                    )
                })
            }),
        )?;
        counters(
            &mut enc,
            CACHE_BACKGROUND_REVALIDATIONS,
            "Background revalidations started for stale-while-revalidate hits.",
            cached().map(|(f, c)| {
                (
                    [("farm", &*f.name)],
                    c.store
                        .stats
                        .background
                        .load(std::sync::atomic::Ordering::Relaxed),
                )
            }),
        )?;
        gauges(
            &mut enc,
            CACHE_SIZE_BYTES,
            "Bytes held by the farm's response cache.",
            cached().map(|(f, c)| ([("farm", &*f.name)], c.store.size_bytes())),
        )?;
        compression(&mut enc, &snap.farms)?;
        limits(&mut enc, &snap.limits)
    }
}

/// Each limit's counts and its key store's size.
fn limits(enc: &mut DescriptorEncoder, limits: &crate::limits::Limits) -> fmt::Result {
    counters(
        enc,
        LIMIT_REQUESTS,
        "Requests a limit counted, by result (allowed, limited, concurrent).",
        limits.iter().flat_map(|l| {
            let s = &l.state;
            [
                ("allowed", s.allowed()),
                ("limited", s.limited()),
                ("concurrent", s.concurrent_refused()),
            ]
            .map(|(r, n)| ([("limit", &*l.name), ("result", r)], n))
        }),
    )?;
    gauges(
        enc,
        LIMIT_KEYS,
        "Keys a limit tracks whose bucket is not full.",
        limits
            .iter()
            .map(|l| ([("limit", &*l.name)], l.state.store.keys() as u64)),
    )?;
    gauges(
        enc,
        LIMIT_KEYS_CAPACITY,
        "The most keys a limit's store holds.",
        limits
            .iter()
            .map(|l| ([("limit", &*l.name)], l.state.store.capacity() as u64)),
    )?;
    gauges(
        enc,
        LIMIT_MEMORY_BYTES,
        "Bytes a limit's key store takes.",
        limits
            .iter()
            .map(|l| ([("limit", &*l.name)], l.state.store.memory() as u64)),
    )?;
    counters(
        enc,
        LIMIT_EVICTED_KEYS,
        "Keys forgotten to make room before their bucket was full.",
        limits
            .iter()
            .map(|l| ([("limit", &*l.name)], l.state.store.evicted())),
    )?;
    cluster_limits(enc, limits)
}

/// The `scope: cluster` limits' exchange with the tier.
fn cluster_limits(enc: &mut DescriptorEncoder, limits: &crate::limits::Limits) -> fmt::Result {
    let synced = || {
        limits
            .iter()
            .filter_map(|l| l.state.cluster.as_ref().map(|c| (&*l.name, c)))
    };
    let read = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    gauges(
        enc,
        LIMIT_CLUSTER_DEGRADED,
        "1 while a cluster-scope limit cannot sync and allows rate / live instances here.",
        synced().map(|(n, c)| ([("limit", n)], u64::from(c.fallback().is_some()))),
    )?;
    counters(
        enc,
        LIMIT_CLUSTER_SYNCS,
        "A cluster-scope limit's exchanges with the tier, by result (ok, failed).",
        synced().flat_map(|(n, c)| {
            [
                ("ok", read(&c.stats.syncs_ok)),
                ("failed", read(&c.stats.syncs_failed)),
            ]
            .map(|(r, v)| ([("limit", n), ("result", r)], v))
        }),
    )?;
    counters(
        enc,
        LIMIT_CLUSTER_KEYS_SYNCED,
        "Keys a cluster-scope limit exchanged with the tier.",
        synced().map(|(n, c)| ([("limit", n)], read(&c.stats.keys_synced))),
    )?;
    counters(
        enc,
        LIMIT_CLUSTER_KEYS_UNSYNCED,
        "Keys active beyond sync_max_keys in an interval, counted locally until a later one.",
        synced().map(|(n, c)| ([("limit", n)], read(&c.stats.keys_unsynced))),
    )?;
    counters(
        enc,
        LIMIT_CLUSTER_REMOTE_REQUESTS,
        "Requests other instances admitted, charged to this instance's buckets.",
        synced().map(|(n, c)| ([("limit", n)], read(&c.stats.remote))),
    )
}

/// Compression series of farms that compress (by their own settings or,
/// once they did, by a rule's), per algorithm.
fn compression(enc: &mut DescriptorEncoder, farms: &[crate::config::FarmRuntime]) -> fmt::Result {
    use crate::compress::{stats::Counts, Algorithm};
    let series = |pick: fn(&Counts) -> u64| {
        farms
            .iter()
            .filter(|f| f.compression.spec.is_some() || f.compression.stats.is_used())
            .flat_map(move |f| {
                Algorithm::ALL.into_iter().map(move |a| {
                    let n = pick(&f.compression.stats.get(a));
                    ([("farm", &*f.name), ("algorithm", a.token())], n)
                })
            })
    };
    counters(
        enc,
        COMPRESSION_RESPONSES,
        "Responses sent compressed, by farm and algorithm.",
        series(|c| c.responses),
    )?;
    counters(
        enc,
        COMPRESSION_ENCODES,
        "Bodies run through an encoder (a cache hit on a stored variant does none).",
        series(|c| c.encodes),
    )?;
    counters(
        enc,
        COMPRESSION_IN_BYTES,
        "Body bytes of compressed responses before compression.",
        series(|c| c.bytes_in),
    )?;
    counters(
        enc,
        COMPRESSION_OUT_BYTES,
        "Body bytes of compressed responses after compression.",
        series(|c| c.bytes_out),
    )
}

// === impl ListenerCollector ===

/// Per-listener traffic and connections.
#[derive(Debug)]
pub struct ListenerCollector(pub Weak<Gateway>);

impl Collector for ListenerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(gw) = self.0.upgrade() else {
            return Ok(());
        };
        // Listeners of the current config (a reload may have removed some).
        let snap = gw.snapshot();
        let listeners: Vec<_> = gw
            .metrics
            .listeners()
            .into_iter()
            .filter(|l| snap.listeners.iter().any(|s| s.name == l.name))
            .collect();
        let mut by_code = Vec::new();
        for l in &listeners {
            for (code, n) in l.codes.iter() {
                by_code.push((&*l.name, code.to_string(), n));
            }
        }
        counters(
            &mut enc,
            REQUESTS,
            "Responses sent to clients, by listener and status code.",
            by_code
                .iter()
                .map(|(l, code, n)| ([("listener", *l), ("code", code.as_str())], *n)),
        )?;
        gauges(
            &mut enc,
            CONNECTIONS_ACTIVE,
            "Open client connections.",
            listeners
                .iter()
                .map(|l| ([("listener", &*l.name)], l.connections_active())),
        )?;
        gauges(
            &mut enc,
            CONNECTIONS_PARKED,
            "Idle HTTP/1 client connections parked (holding no HTTP state or buffers).",
            listeners.iter().map(|l| {
                (
                    [("listener", &*l.name)],
                    l.connections_parked.load(Ordering::Relaxed),
                )
            }),
        )?;
        counters(
            &mut enc,
            CONNECTIONS_EVICTED,
            "Idle client connections closed to make room at max_connections.",
            listeners.iter().map(|l| {
                let set = gw.connections.listener(&l.name);
                (
                    [("listener", &*l.name)],
                    set.evicted.load(Ordering::Relaxed),
                )
            }),
        )?;
        counters(
            &mut enc,
            CONNECTIONS_REFUSED,
            "Client connections closed on arrival: access lists or max_connections_per_ip.",
            listeners.iter().flat_map(|l| {
                let set = gw.connections.listener(&l.name);
                [
                    ("access", set.refused.access.load(Ordering::Relaxed)),
                    ("per_ip", set.refused.per_ip.load(Ordering::Relaxed)),
                ]
                .map(|(r, n)| ([("listener", &*l.name), ("reason", r)], n))
            }),
        )?;
        let mut timeouts = Vec::new();
        for l in &listeners {
            for t in crate::metrics::listener::ClientTimeout::ALL {
                let n = l.client_timeouts[t as usize].load(Ordering::Relaxed);
                timeouts.push(([("listener", &*l.name), ("timeout", t.as_str())], n));
            }
        }
        counters(
            &mut enc,
            CLIENT_TIMEOUTS,
            "Client connections cut off by header_timeout (408), body_timeout or send_timeout.",
            timeouts,
        )?;
        counters(
            &mut enc,
            CONNECTIONS,
            "Client connections accepted.",
            listeners.iter().map(|l| {
                (
                    [("listener", &*l.name)],
                    l.connections_total.load(Ordering::Relaxed),
                )
            }),
        )?;
        let tls = gw.tls.stats();
        counters(
            &mut enc,
            TLS_HANDSHAKES,
            "TLS handshakes with clients completed (full and resumed).",
            tls.iter()
                .map(|t| ([("listener", &*t.listener)], t.handshakes())),
        )?;
        counters(
            &mut enc,
            TLS_RESUMED_HANDSHAKES,
            "TLS handshakes that resumed a session.",
            tls.iter()
                .map(|t| ([("listener", &*t.listener)], t.resumed_handshakes())),
        )?;
        counters(
            &mut enc,
            TLS_HANDSHAKE_FAILURES,
            "TLS handshakes with clients that failed or timed out.",
            tls.iter()
                .map(|t| ([("listener", &*t.listener)], t.handshake_failures())),
        )?;
        counters(
            &mut enc,
            TLS_CERTIFICATE_RELOADS,
            "Certificate files reloaded by the watcher, by result (success, failure).",
            tls.iter().flat_map(|t| {
                [
                    ("success", t.certificate_reloads()),
                    ("failure", t.certificate_reload_failures()),
                ]
                .map(|(result, n)| ([("listener", &*t.listener), ("result", result)], n))
            }),
        )?;
        acme(&mut enc)
    }
}

/// The ACME certificates' expiry and renewal counters.
fn acme(enc: &mut DescriptorEncoder) -> fmt::Result {
    // Described even without ACME listeners, so dashboards find the names.
    let all = crate::tls::acme::statuses().snapshot();
    let now = crate::tls::certs::unix_now();
    gauges(
        enc,
        ACME_CERTIFICATE_EXPIRY_DAYS,
        "Days until the listener's ACME certificate expires.",
        all.iter().filter_map(|s| {
            let days = s.days_to_expiry(now)?;
            let domain = s.domains.first().map_or("", String::as_str);
            Some((
                [("listener", s.listener.as_str()), ("domain", domain)],
                days,
            ))
        }),
    )?;
    gauges(
        enc,
        ACME_NEXT_RENEWAL,
        "Unix time the listener's ACME certificate is renewed at, by the CA's window (ari) or two thirds of its lifetime.",
        all.iter().filter(|s| s.next_renewal > 0).map(|s| {
            (
                [("listener", s.listener.as_str()), ("by", s.renewal_by)],
                s.next_renewal as f64,
            )
        }),
    )?;
    counters(
        enc,
        ACME_RENEWALS,
        "ACME certificates issued (first issue and renewals).",
        all.iter()
            .map(|s| ([("listener", s.listener.as_str())], s.renewals_total)),
    )?;
    counters(
        enc,
        ACME_ORDERS,
        "ACME orders this instance placed (in a tier, only the order lock's holder orders).",
        all.iter()
            .map(|s| ([("listener", s.listener.as_str())], s.orders_total)),
    )?;
    counters(
        enc,
        ACME_RENEWAL_FAILURES,
        "ACME orders and renewals that failed.",
        all.iter()
            .map(|s| ([("listener", s.listener.as_str())], s.failures_total)),
    )
}

/// The host names of DNS-named servers: lookups, changes, addresses.
fn dns(gw: &Gateway, enc: &mut DescriptorEncoder) -> fmt::Result {
    let names = gw
        .registry
        .attached::<crate::farm::resolve::NameRegistry>()
        .all();
    let views: Vec<_> = names.iter().map(|n| n.view()).collect();
    counters(
        enc,
        DNS_LOOKUPS,
        "Lookups of a server's host name, by result (ok, failed: the last answer stays).",
        views.iter().flat_map(|v| {
            [
                (
                    [("name", v.name.as_str()), ("result", "ok")],
                    v.lookups - v.failures,
                ),
                (
                    [("name", v.name.as_str()), ("result", "failed")],
                    v.failures,
                ),
            ]
        }),
    )?;
    counters(
        enc,
        DNS_CHANGES,
        "Answers for a server's host name that differed from the one before.",
        views
            .iter()
            .map(|v| ([("name", v.name.as_str())], v.changes)),
    )?;
    gauges(
        enc,
        DNS_ADDRESSES,
        "Addresses a server's host name resolves to now (each one a member of its farm).",
        views
            .iter()
            .map(|v| ([("name", v.name.as_str())], v.addresses.len() as i64)),
    )
}

// === impl ConfigCollector ===

/// Reloads and build information.
#[derive(Debug)]
pub struct ConfigCollector(pub Weak<Gateway>);

impl Collector for ConfigCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(gw) = self.0.upgrade() else {
            return Ok(());
        };
        let spans = &gw.serving.shared.span_stats;
        counters(
            &mut enc,
            TRACE_SPANS,
            "Spans of sampled requests, by result (exported, dropped: queue full, failed).",
            [
                ([("result", "exported")], spans.exported()),
                ([("result", "dropped")], spans.dropped()),
                ([("result", "failed")], spans.failed()),
            ],
        )?;
        let r = &gw.reloads;
        counters(
            &mut enc,
            CONFIG_RELOADS,
            "Configuration reloads, by result (success, failure).",
            [
                ([("result", "success")], r.successes.load(Ordering::Relaxed)),
                ([("result", "failure")], r.failures.load(Ordering::Relaxed)),
            ],
        )?;
        let last = r.last_success_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        gauge(
            &mut enc,
            CONFIG_LAST_RELOAD_SUCCESS,
            "Unix time when the running configuration loaded (start-up or reload).",
            last,
        )?;
        dns(&gw, &mut enc)?;
        let (failed, refused) = gw.upgrade.not_done();
        counters(
            &mut enc,
            UPGRADES_NOT_DONE,
            "Binary upgrades that did not happen, by result (failed, refused); this process kept serving.",
            [
                ([("result", "failed")], failed),
                ([("result", "refused")], refused),
            ],
        )?;
        let open = crate::listener::workers::open_per_thread();
        let threads: Vec<String> = (0..open.len()).map(|i| i.to_string()).collect();
        gauges(
            &mut enc,
            SERVING_THREAD_CONNECTIONS,
            "Client connections each serving thread serves now (runtime.worker_threads).",
            threads
                .iter()
                .zip(&open)
                .map(|(t, &n)| ([("thread", t.as_str())], n as i64)),
        )?;
        enc.encode_descriptor(BUILD, "farmgate's version.", None, MetricType::Info)?
            .encode_info(&[("version", env!("CARGO_PKG_VERSION"))])
    }
}

// === impl ProcessCollector ===

/// CPU, memory and file descriptors of this process.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(p) = process::sample() else {
            return Ok(());
        };
        enc.encode_descriptor(
            PROCESS_CPU_SECONDS,
            "User and system CPU time spent, in seconds.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&p.cpu_seconds, None)?;
        gauge(
            &mut enc,
            PROCESS_RESIDENT_MEMORY,
            "Resident memory size in bytes.",
            p.resident_bytes,
        )?;
        gauge(
            &mut enc,
            PROCESS_VIRTUAL_MEMORY,
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        )?;
        gauge(
            &mut enc,
            PROCESS_THREADS,
            "OS threads of the process.",
            p.threads,
        )?;
        if let Some(n) = p.open_fds {
            gauge(&mut enc, PROCESS_OPEN_FDS, "Open file descriptors.", n)?;
        }
        if let Some(n) = p.max_fds {
            gauge(
                &mut enc,
                PROCESS_MAX_FDS,
                "Maximum number of open file descriptors.",
                n,
            )?;
        }
        if let Some(t) = p.start_time_seconds {
            gauge(
                &mut enc,
                PROCESS_START_TIME,
                "Start time of the process since the unix epoch, in seconds.",
                t,
            )?;
        }
        Ok(())
    }
}
