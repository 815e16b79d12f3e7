//! The compiled, immutable runtime snapshot. Built once per load or reload
//! by `config::build`, then shared behind one `ArcSwap`; a request loads it
//! once and uses it to the end, so a reload never changes a request midway.

use crate::cache::FarmCache;
use crate::farm::Farm;
use crate::health::FarmHealth;
use crate::proxy::pool::BackendPool;
use crate::rules::RuleSet;
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

pub use crate::ground::net::canonical_ip;
pub use crate::log::access::AccessFormat;
pub use crate::proxy::spec::{ClientLimits, ForwardedFor, ProxySpec};

#[derive(Debug)]
pub struct Snapshot {
    /// The file this was read from, for messages.
    pub file: String,
    pub listeners: Vec<ListenerSpec>,
    pub admin: AdminSpec,
    pub proxy: ProxySpec,
    pub log: LogSpec,
    /// Trace context; `None` when there is no `trace:` section (the
    /// request path then does nothing for it).
    pub trace: Option<crate::trace::TraceSpec>,
    pub runtime: RuntimeSpec,
    pub farms: Vec<FarmRuntime>,
    pub default_farm: Option<usize>,
    pub rules: RuleSet,
    /// The rules' `compression` sections, by rule index.
    pub rule_compression: crate::compress::RuleSpecs,
    /// Client TLS settings of the `https://` servers, for the connector.
    pub backend_tls: Arc<crate::tls::backend::BackendTlsMap>,
    /// Files besides the config file that this snapshot was read from
    /// (rewrite map files): the watcher reloads when one changes.
    pub sources: Vec<std::path::PathBuf>,
    /// Rate limits, referenced by index from listeners, farms and rules.
    pub limits: crate::limits::Limits,
    /// The `cluster:` section, when this instance is part of a tier.
    pub cluster: Option<Arc<super::cluster::ClusterSpec>>,
    /// What must agree across the tier, hashed (`cluster::tier_hash`).
    pub tier_hash: String,
    /// Where server host names are looked up (`resolve:`).
    pub resolve: Arc<crate::farm::resolve::ResolveSpec>,
    /// How to build this snapshot again: what a changed DNS answer does
    /// (`reload::watch_names`), from the text it was built from rather than
    /// a file that may be mid-edit.
    pub rebuild: Rebuild,
    /// What `farmgate check` warns about without refusing the file (a
    /// server name that does not resolve now).
    pub warnings: Vec<super::ConfigError>,
}

impl Snapshot {
    pub fn farm_index(&self, name: &str) -> Option<usize> {
        self.farms.iter().position(|f| &*f.name == name)
    }

    /// A one-line summary for `farmgate check` and the start-up log.
    pub fn summary(&self) -> String {
        let servers: usize = self.farms.iter().map(|f| f.servers.len()).sum();
        format!(
            "{} listener(s), {} farm(s), {} server(s), {} rule(s)",
            self.listeners.len(),
            self.farms.len(),
            servers,
            self.rules.len()
        )
    }
}

/// A farm as a snapshot holds it: the farm itself (servers, selection,
/// affinity) and what the layers above `farm/` attach to it.
#[derive(Debug)]
pub struct FarmRuntime {
    pub farm: Farm,
    /// Health checks, live traffic, minimum servers, slow start.
    pub health: Arc<FarmHealth>,
    /// The response cache, when `cache` is configured and enabled.
    pub cache: Option<FarmCache>,
    /// Response compression (settings when on, counters always).
    pub compression: crate::compress::FarmCompression,
    /// Each server's idle connections, in server order (shared with every
    /// server at the same address).
    pub pools: Vec<Arc<BackendPool>>,
    /// `backend_idle_timeout`: how long a connection to one of this farm's
    /// servers may sit idle in its pool (`proxy::pool::keep_for`).
    pub backend_idle_timeout: Duration,
    /// `protocol`: HTTP/1.1 or HTTP/2 to the farm's servers.
    pub protocol: crate::proxy::protocol::Protocol,
    /// `grpc_retry_on`: trailers-only gRPC statuses retried elsewhere.
    pub grpc_retry_on: crate::proxy::grpc::RetryOn,
    /// Limits every request routed here passes (indexes in `limits`).
    pub limits: Box<[usize]>,
    /// The PROXY protocol header sent on each new server connection.
    pub send_proxy: Option<crate::proxy::send_proxy::Version>,
    /// `interim_responses: relay`: the servers' 1xx go on to HTTP/1.1
    /// clients (`proxy::interim`).
    pub relay_interim: bool,
}

impl FarmRuntime {
    /// Puts server `index` in admin state `to` (the admin API, or the tier
    /// through `cluster`), decided at `source`; `how` ends the state-change
    /// note ("drained through the admin API"). Starts slow start on an
    /// enable, applies the minimum-servers floor. Returns true when the
    /// state changed.
    pub fn set_admin(
        &self,
        index: usize,
        to: crate::farm::AdminState,
        source: crate::farm::AdminSource,
        how: &str,
    ) -> bool {
        use crate::farm::AdminState;
        let Some(server) = self.servers.get(index) else {
            return false;
        };
        let state = &server.state;
        let from = state.admin();
        state.set_admin(to);
        state.set_admin_source(source);
        if from != to {
            let done = match to {
                AdminState::Draining => format!("drained {how}"),
                AdminState::Disabled => format!("disabled {how}"),
                AdminState::Enabled => format!("enabled {how}"),
            };
            state.stats.record_change(state.state_name(), done);
            if to == AdminState::Enabled && state.is_healthy() {
                state.begin_ramp(self.health.slow_start);
            }
            tracing::info!(farm = %self.name, server = %server.name,
                "admin: {} -> {} {how} ({} request(s) in flight)", from.as_str(), to.as_str(), state.in_flight());
        }
        self.health.apply_floor();
        from != to
    }
}

/// A snapshot's farm reads as its [`Farm`] (name, servers, `pick`).
impl std::ops::Deref for FarmRuntime {
    type Target = Farm;
    fn deref(&self) -> &Farm {
        &self.farm
    }
}

#[derive(Debug, Clone)]
pub struct ListenerSpec {
    pub name: Arc<str>,
    pub bind: SocketAddr,
    /// TLS termination settings; `None` for plain HTTP.
    pub tls: Option<Arc<crate::tls::TlsSpec>>,
    /// At most this many client connections are open on this listener.
    pub max_connections: usize,
    /// With the PROXY protocol: the sources that may connect (and must
    /// send its header).
    pub proxy_protocol: Option<Arc<[ipnet::IpNet]>>,
    /// Open connections one client address may have.
    pub max_connections_per_ip: Option<u32>,
    /// Limits every request of this listener passes (indexes in the
    /// snapshot's `limits`).
    pub limits: Box<[usize]>,
    /// Clients refused at connect (the connection is closed).
    pub access: Option<Arc<crate::limits::AccessList>>,
}

#[derive(Debug, Clone)]
pub struct AdminSpec {
    pub enabled: bool,
    pub bind: SocketAddr,
    pub token: Option<String>,
}

pub use crate::log::LogSpec;

#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    pub worker_threads: Option<usize>,
    pub shutdown_timeout: Duration,
    pub pid_file: Option<std::path::PathBuf>,
    /// `runtime.http1`: who serves HTTP/1 client connections.
    pub http1: Http1Server,
}

/// `runtime.http1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Server {
    /// farmgate's own HTTP/1 code reads request heads and bodies and
    /// writes responses (`listener/engine.rs`).
    #[default]
    Engine,
    /// hyper's HTTP/1 server, as before the engine.
    Hyper,
}

impl Http1Server {
    pub const NAMES: &'static str = "engine or hyper";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "engine" => Some(Http1Server::Engine),
            "hyper" => Some(Http1Server::Hyper),
            _ => None,
        }
    }
}

/// Builds a snapshot again, with the host names' current answers.
#[derive(Clone)]
pub struct Rebuild(
    #[allow(clippy::type_complexity)]
    pub  Arc<
        dyn Fn(&crate::farm::StateRegistry) -> Result<Snapshot, super::ConfigErrors> + Send + Sync,
    >,
);

impl Rebuild {
    /// For a snapshot built from raw types alone: nothing to build it from.
    pub fn none(file: &str) -> Self {
        let file = file.to_string();
        Rebuild(Arc::new(move |_| {
            Err(super::ConfigErrors::whole_file(
                &file,
                "this configuration was not built from text and cannot be rebuilt",
            ))
        }))
    }

    pub fn run(
        &self,
        registry: &crate::farm::StateRegistry,
    ) -> Result<Snapshot, super::ConfigErrors> {
        (self.0)(registry)
    }
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rebuild")
    }
}
