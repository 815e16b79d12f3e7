//! TLS: terminating client TLS on listeners (SSL offloading) and
//! re-encrypting to `https://` backends, with rustls on its default aws-lc-rs
//! provider.
//!
//! - `certs`: PEM chains and keys from disk, validated (key matches, not
//!   expired) into a [`certs::CertSet`]; `load_set` is what start-up, the
//!   file watcher and a config reload call.
//! - `resolver`: picks a certificate per handshake by SNI (SANs, wildcards),
//!   behind an `ArcSwap` so a new set applies to the next handshake.
//! - `acceptor`: the listener side: rustls `ServerConfig` (versions, ALPN,
//!   resumption) and the handshake with its timeout and counters.
//! - `watch`: polls certificate files and swaps a replaced certificate in.
//! - `backend`: client TLS settings for `https://` servers.
//! - `stats`: handshake and reload counters, read by metrics.
//! - `registry`: the running TLS listeners by name (metrics, reload).
//! - `devcerts`: the development CA and certificates (`farmgate gen-certs`).

pub mod acceptor;
pub mod backend;
pub mod certs;
pub mod devcerts;
pub mod registry;
pub mod resolver;
pub mod spec;
pub mod stats;
pub mod watch;

pub use acceptor::{TlsListener, TlsSpec};
pub use certs::{CertError, CertPaths, CertSet};
pub use registry::TlsRegistry;
pub use stats::TlsStats;

use rustls::crypto::CryptoProvider;
use std::sync::Arc;

/// The process-wide crypto provider: aws-lc-rs, installed as rustls' default
/// on first use. Idempotent, and tolerant of a provider someone else (a test,
/// an embedding program) installed first: that one is then used.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    // Losing a race with another installer is fine: get_default has one now.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}
