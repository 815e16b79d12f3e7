//! The answers to pending ACME challenges, shared by every listener of the
//! process: HTTP-01 key authorizations by token (served by the request
//! stage at `/.well-known/acme-challenge/<token>` before any rule runs) and
//! TLS-ALPN-01 validation certificates by domain (served by a TLS
//! listener's resolver to a client that offers only `acme-tls/1`).
//!
//! The book is empty nearly always; a lookup is one read lock on a small map
//! and is only made for a challenge path or an `acme-tls/1` hello.

use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// The ALPN protocol id of TLS-ALPN-01 (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// The path prefix of HTTP-01 (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Debug, Default)]
pub struct ChallengeBook {
    http01: RwLock<HashMap<String, String>>,
    tls_alpn01: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// The process's book.
pub fn book() -> &'static ChallengeBook {
    static BOOK: OnceLock<ChallengeBook> = OnceLock::new();
    BOOK.get_or_init(ChallengeBook::default)
}

impl ChallengeBook {
    pub fn add_http01(&self, token: &str, key_authorization: &str) {
        self.http01
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove_http01(&self, token: &str) {
        self.http01
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// The key authorization for the token at the end of `path`, when
    /// `path` is an HTTP-01 challenge path with a pending token.
    pub fn http01_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.http01
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    pub fn add_tls_alpn01(&self, domain: &str, cert: Arc<CertifiedKey>) {
        self.tls_alpn01
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_ascii_lowercase(), cert);
    }

    pub fn remove_tls_alpn01(&self, domain: &str) {
        self.tls_alpn01
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&domain.to_ascii_lowercase());
    }

    /// The validation certificate for `sni`, if a TLS-ALPN-01 challenge
    /// for it is pending.
    pub fn tls_alpn01_cert(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn01
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sni.to_ascii_lowercase())
            .cloned()
    }
}

/// Whether a ClientHello's ALPN list asks for TLS-ALPN-01 validation: the
/// RFC has the validator offer `acme-tls/1` alone.
pub fn is_acme_hello<'a>(mut alpn: impl Iterator<Item = &'a [u8]>) -> bool {
    alpn.next() == Some(ACME_TLS_ALPN) && alpn.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_pending_tokens_under_the_prefix() {
        let b = ChallengeBook::default();
        b.add_http01("tok", "tok.thumb");
        assert_eq!(
            b.http01_answer("/.well-known/acme-challenge/tok")
                .as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(b.http01_answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(b.http01_answer("/tok"), None);
        b.remove_http01("tok");
        assert_eq!(b.http01_answer("/.well-known/acme-challenge/tok"), None);
    }

    #[test]
    fn only_an_acme_only_alpn_list_is_a_validation_hello() {
        assert!(is_acme_hello([ACME_TLS_ALPN].into_iter()));
        assert!(!is_acme_hello([&b"h2"[..], ACME_TLS_ALPN].into_iter()));
        assert!(!is_acme_hello(std::iter::empty()));
    }
}
