//! farmgate: the front door for a web farm.
//!
//! # Layers
//!
//! The modules form layers, and a module imports only from layers below its
//! own (never sideways within its layer): the ground knows nothing of
//! forwarding, caching or health, and a request travels one way through the
//! stages. [`LAYERS`] is the order, lowest first; `tests/architecture.rs`
//! reads `src/` and fails on an import that runs upward or sideways.
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | ground | `ground`, `http1`, `demo`, `notify` | config units, config errors and their places in the file; an own HTTP/1 codec; the demo backends; systemd notifications |
//! | counters | `metrics`, `log`, `tls`, `limits`, `trace` | per-server and per-listener counters and metric names; the access log; TLS certificates, acceptors, backend TLS; abuse protection's parts (GCRA, bounded key stores, in-flight tables, IP lists, the `limits:` section); trace context (the `trace:` section, the OTLP span exporter) |
//! | farm | `farm` | servers, their long-lived state, selection policies and admission, affinity, hash keys |
//! | farm parts | `health`, `rules` | health state, live traffic, floor; request rules |
//! | forwarding | `proxy` | upstream (HTTP/1.1 and HTTP/2), pools, connector, headers, bodies, upgrades, gRPC, errors |
//! | response stages | `compress` | response compression |
//! | cache | `cache` | the response cache, given a fetch from the request stage |
//! | config | `config` | reads the file, runs each module's compiler, the snapshot |
//! | request | `request`, `history` | one request in order: entry, routing, cache, forwarding; the status page's per-second history of the snapshot's farms |
//! | serving | `listener` | accepting, connection limits, HTTP/1 and HTTP/2 serving |
//! | upgrade | `upgrade` | binary upgrade: the protocol between the processes, the new process's side |
//! | running state | `gateway` | the current snapshot, long-lived registries, listener set |
//! | tasks | `checks`, `reload`, `cluster`, `handover` | active health checks, reload, cluster sync, the old process's side of a binary upgrade |
//! | operators | `admin`, `signals` | the admin API, status page, Prometheus exposition; the Unix signals farmgate answers |
//! | start | `running` | starting and stopping everything |

/// The layer order, lowest first. A module may import from any layer below
/// its own. Names not present in `src/` yet are places kept for them.
pub const LAYERS: &[&[&str]] = &[
    &["ground", "http1", "demo", "notify"],
    &["metrics", "log", "tls", "limits", "trace"],
    &["farm"],
    &["health", "rules"],
    &["proxy"],
    &["compress"],
    &["cache"],
    &["config"],
    &["request", "history"],
    &["listener"],
    &["upgrade"],
    &["gateway"],
    &["checks", "reload", "cluster", "handover"],
    &["admin", "signals"],
    &["running"],
];

pub mod admin;
pub mod cache;
pub mod checks;
pub mod cluster;
pub mod compress;
pub mod config;
pub mod demo;
pub mod farm;
pub mod gateway;
pub mod ground;
pub mod handover;
pub mod health;
pub mod history;
pub mod http1;
pub mod limits;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod rules;
pub mod running;
pub mod signals;
pub mod tls;
pub mod trace;
pub mod upgrade;

pub use gateway::Gateway;
pub use running::Running;
