//! The listener side of TLS: the compiled `listeners[].tls` settings
//! ([`TlsSpec`]) and the running [`TlsListener`] that performs handshakes.
//!
//! The rustls `ServerConfig` sits behind an `ArcSwap` and certificates
//! behind the resolver's own, so certificate files, versions and ALPN can all
//! change under a running listener; each handshake takes the current ones
//! and open connections keep what they negotiated. The session ticketer and
//! the session cache outlive those swaps so resumption keeps working across
//! a certificate reload.

use super::certs::{format_unix, unix_now, CertPaths, CertSet, LoadedCert};
use super::resolver::SniResolver;
use super::stats::TlsStats;
use arc_swap::ArcSwap;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{HandshakeKind, ServerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// Sessions remembered for TLS 1.2 clients that resume by session id
/// rather than by ticket (about 200 bytes each).
const SESSION_CACHE_SIZE: usize = 16 * 1024;

/// Certificates expiring sooner than this are warned about at load.
const EXPIRY_WARNING: i64 = 14 * 86_400;

/// `listeners[].tls`, compiled and with its certificates already loaded.
#[derive(Debug)]
pub struct TlsSpec {
    pub certificates: Vec<CertPaths>,
    /// Loaded and validated by config build (so `check` proves them).
    pub loaded: Arc<CertSet>,
    pub min_version: MinVersion,
    /// ALPN protocol ids in preference order, e.g. `h2`, `http/1.1`.
    pub alpn: Vec<Vec<u8>>,
    pub handshake_timeout: Duration,
    /// How often certificate files are checked for changes; zero: never.
    pub watch_interval: Duration,
    /// Client certificates asked for (mutual TLS).
    pub client_auth: Option<super::client_auth::ClientAuthSpec>,
    /// Certificates obtained by ACME (`tls.acme`), beside or instead of files.
    pub acme: Option<Arc<super::acme::AcmeSpec>>,
}

/// A running TLS listener: its rustls config, certificate resolver and counters.
pub struct TlsListener {
    pub name: Arc<str>,
    pub stats: Arc<TlsStats>,
    resolver: Arc<SniResolver>,
    /// The certificates from files (config or watcher) and those a manager
    /// installs (ACME); the resolver serves both, managed ones first.
    files: ArcSwap<CertSet>,
    managed: ArcSwap<Vec<LoadedCert>>,
    config: ArcSwap<ServerConfig>,
    spec: ArcSwap<TlsSpec>,
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("name", &self.name)
            .field("certificates", &self.resolver.current())
            .finish()
    }
}

impl TlsListener {
    /// A listener sealing session tickets with `tier_tickets` when the tier
    /// has shared keys, else with its own rotating key.
    pub fn new(
        name: Arc<str>,
        spec: Arc<TlsSpec>,
        tier_tickets: Arc<super::tickets::TierKeys>,
    ) -> Result<Arc<Self>, rustls::Error> {
        super::provider();
        let resolver = Arc::new(SniResolver::new(spec.loaded.clone()));
        let ticketer = super::tickets::Ticketer::shared(tier_tickets)?;
        let sessions: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        let config = server_config(&spec, &resolver, &ticketer, &sessions)?;
        Ok(Arc::new(TlsListener {
            stats: Arc::new(TlsStats::new(name.clone())),
            name,
            resolver,
            files: ArcSwap::new(spec.loaded.clone()),
            managed: ArcSwap::default(),
            config: ArcSwap::new(config),
            spec: ArcSwap::new(spec),
            ticketer,
            sessions,
        }))
    }

    /// Applies new settings (a config reload): versions, ALPN and
    /// certificates change for new handshakes; open connections are kept.
    pub fn apply(&self, spec: Arc<TlsSpec>) -> Result<(), rustls::Error> {
        let config = server_config(&spec, &self.resolver, &self.ticketer, &self.sessions)?;
        self.files.store(spec.loaded.clone());
        self.resolver.replace(self.merged());
        self.config.store(config);
        self.spec.store(spec);
        self.log_certificates();
        Ok(())
    }

    /// Serves `set` from the next handshake on (the watcher's reload).
    pub fn replace_certificates(&self, set: Arc<CertSet>) {
        self.files.store(set);
        self.resolver.replace(self.merged());
        self.log_certificates();
    }

    /// Serves `certs` (an ACME manager's) beside the files' certificates
    /// from the next handshake on; open connections keep theirs.
    pub fn install_managed(&self, certs: Vec<LoadedCert>) {
        self.managed.store(Arc::new(certs));
        self.resolver.replace(self.merged());
    }

    /// Whether a manager installed certificates.
    pub fn has_managed(&self) -> bool {
        !self.managed.load().is_empty()
    }

    fn merged(&self) -> Arc<CertSet> {
        let files = self.files.load_full();
        let managed = self.managed.load();
        if managed.is_empty() {
            return files;
        }
        let mut all: Vec<LoadedCert> = managed.iter().cloned().collect();
        all.extend(files.certs().iter().cloned());
        Arc::new(CertSet::new(all))
    }

    pub fn spec(&self) -> Arc<TlsSpec> {
        self.spec.load_full()
    }

    pub fn certificates(&self) -> Arc<CertSet> {
        self.resolver.current()
    }

    /// Runs the server handshake within `handshake_timeout`. A failure is
    /// counted and logged at debug only: scanners would flood the log.
    pub async fn accept(&self, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.config.load_full());
        let timeout = self.spec.load().handshake_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                if stream.get_ref().1.alpn_protocol() == Some(super::acme::ACME_TLS_ALPN) {
                    // A TLS-ALPN-01 validation: the handshake was the answer.
                    tracing::debug!(listener = %self.name, "answered a TLS-ALPN-01 validation");
                    return None;
                }
                let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                self.stats.handshake_done(resumed);
                Some(stream)
            }
            Ok(Err(e)) => {
                self.stats.handshake_failed(false);
                tracing::debug!(listener = %self.name, "TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                self.stats.handshake_failed(true);
                tracing::debug!(listener = %self.name, "TLS handshake timed out after {timeout:?}");
                None
            }
        }
    }

    /// The connection's verified client certificate, when the listener
    /// asks for one (`client_auth`) and the client's verifies.
    pub fn client_cert(
        &self,
        stream: &TlsStream<TcpStream>,
    ) -> Option<Arc<super::client_auth::ClientCert>> {
        let spec = self.spec.load();
        let auth = spec.client_auth.as_ref()?;
        auth.verify(stream.get_ref().1.peer_certificates())
    }

    /// One log line per certificate; a warning when one is close to expiry.
    pub fn log_certificates(&self) {
        let now = unix_now();
        for c in self.resolver.current().certs() {
            let days = (c.not_after - now) / 86_400;
            let until = format_unix(c.not_after);
            if c.not_before > now {
                tracing::warn!(listener = %self.name, "certificate {} is not valid before {}; clients will refuse it until then",
                    c.paths.cert.display(), format_unix(c.not_before));
            }
            if c.not_after - now < EXPIRY_WARNING {
                tracing::warn!(listener = %self.name, "certificate {} for {} expires on {until} (in {days} day(s))",
                    c.paths.cert.display(), c.names_text());
            } else {
                tracing::info!(listener = %self.name, "certificate {} for {} valid until {until}",
                    c.paths.cert.display(), c.names_text());
            }
        }
    }
}

fn server_config(
    spec: &TlsSpec,
    resolver: &Arc<SniResolver>,
    ticketer: &Arc<dyn ProducesTickets>,
    sessions: &Arc<dyn StoresServerSessions>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match spec.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder =
        ServerConfig::builder_with_provider(super::provider()).with_protocol_versions(versions)?;
    let builder = match &spec.client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = spec.alpn.clone();
    if spec
        .acme
        .as_ref()
        .is_some_and(|a| a.challenge == super::acme::config::ChallengeKind::TlsAlpn01)
    {
        // Last: only a validator offering nothing else negotiates it.
        config
            .alpn_protocols
            .push(super::acme::ACME_TLS_ALPN.to_vec());
    }
    // Resumption: stateless tickets (TLS 1.2 and 1.3) plus a session-id
    // cache for TLS 1.2 clients without ticket support. No 0-RTT: early
    // data can be replayed, and a proxy cannot tell which requests are safe.
    config.ticketer = ticketer.clone();
    config.session_storage = sessions.clone();
    Ok(Arc::new(config))
}
