//! Certificate choice per handshake: rustls asks [`SniResolver`] with the
//! client's SNI and signature schemes; it answers from the current
//! [`CertSet`], which lives behind an `ArcSwap` so a reloaded set applies to
//! the next handshake while open connections keep theirs.

use super::certs::CertSet;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

#[derive(Debug)]
pub struct SniResolver {
    set: ArcSwap<CertSet>,
}

impl SniResolver {
    pub fn new(set: Arc<CertSet>) -> Self {
        SniResolver {
            set: ArcSwap::new(set),
        }
    }

    /// Serves `set` from the next handshake on.
    pub fn replace(&self, set: Arc<CertSet>) {
        self.set.store(set);
    }

    pub fn current(&self) -> Arc<CertSet> {
        self.set.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if hello
            .alpn()
            .is_some_and(|mut ids| super::acme::challenges::is_acme_hello(&mut ids))
        {
            // TLS-ALPN-01 (RFC 8737): the validation certificate or nothing.
            return hello
                .server_name()
                .and_then(|name| super::acme::book().tls_alpn01_cert(name));
        }
        self.set
            .load()
            .choose(hello.server_name(), hello.signature_schemes())
    }
}
