//! The HTTP client ARI's asks go through: a hyper-rustls client like
//! instant-acme's own (our crypto provider; the `ca` file's certificates,
//! or the system's roots), which gives a renewalInfo answer without
//! `Retry-After` the default poll interval (RFC 9773 §4.3: a client picks
//! one). instant-acme refuses such an answer outright, which would throw a
//! valid window away for a missing hint. Orders keep instant-acme's client.

use super::ari::DEFAULT_POLL;
use super::config::AcmeSpec;
use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::pin::Pin;

type Inner = Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// An account builder whose client adds the default `Retry-After`.
pub fn builder(spec: &AcmeSpec) -> Result<AccountBuilder, String> {
    let mut roots = RootCertStore::empty();
    match &spec.ca {
        Some(ca) => {
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
        }
        None => {
            let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let inner: Inner = Client::builder(TokioExecutor::new()).build(https);
    Ok(Account::builder_with_http(Box::new(DefaultRetryAfter(
        inner,
    ))))
}

struct DefaultRetryAfter(Inner);

impl HttpClient for DefaultRetryAfter {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        // GETs are the directory and renewalInfo; the directory ignores it.
        let get = req.method() == Method::GET;
        let sent = HttpClient::request(&self.0, req);
        Box::pin(async move {
            let mut rsp = sent.await?;
            if get && rsp.parts.status.is_success() && !rsp.parts.headers.contains_key(RETRY_AFTER)
            {
                rsp.parts
                    .headers
                    .insert(RETRY_AFTER, HeaderValue::from(DEFAULT_POLL.as_secs()));
            }
            Ok(rsp)
        })
    }
}
