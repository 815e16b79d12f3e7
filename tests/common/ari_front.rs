//! An ACME front that adds ARI (RFC 9773) to Debian's pebble 2.4, which
//! has none. A real HTTPS server on 127.0.0.1 with pebble's own listener
//! certificate (so the `ca` farmgate trusts for pebble trusts it too) that
//! passes every request on to the real pebble with its Host kept: pebble
//! builds its URLs and checks each JWS `url` from the Host, so accounts,
//! orders, authorizations and certificates all keep going through here to
//! pebble. What it adds, as an ARI server would:
//! - `renewalInfo` in the directory, and `GET /renewal-info/{certID}`
//!   answered as the test's [`Policy`] says; the IDs asked for are recorded;
//! - the `replaces` of each newOrder recorded, and echoed in the created
//!   order (RFC 9773 §5: a server that accepts the field reflects it;
//!   pebble 2.4 ignores it), or, when told to, refused with 409
//!   `alreadyReplaced` (another order replaced that certificate first).
#![allow(dead_code, clippy::unwrap_used)]

use crate::pebble::Pebble;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

/// The front's answer to a renewalInfo GET.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A window from `start_in` to `end_in` seconds after the ask, with
    /// `Retry-After: retry_after` when given.
    Window {
        start_in: i64,
        end_in: i64,
        retry_after: Option<u64>,
    },
    /// This status, no body that parses.
    Status(u16),
    /// 200 with a body that is not a renewal window.
    Garbage,
}

/// The reply for a certificate: given how many other certificate IDs were
/// asked for before this one's first ask (0: the first certificate).
pub type Policy = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// The first certificate renews 3 to 6 s after the ask (the CA would say
/// so before revoking it; ask again in a second, which is below the
/// client's floor); later ones 40 to 80 s after, with no `Retry-After`.
pub fn near_then_later() -> Policy {
    Arc::new(|index| match index {
        0 => Reply::Window {
            start_in: 3,
            end_in: 6,
            retry_after: Some(1),
        },
        _ => Reply::Window {
            start_in: 40,
            end_in: 80,
            retry_after: None,
        },
    })
}

/// One renewalInfo GET: the certificate ID, Unix seconds, and the window
/// served (`None` for an error or garbage reply).
#[derive(Debug, Clone)]
pub struct Asked {
    pub cert_id: String,
    pub at: i64,
    pub window: Option<(i64, i64)>,
}

#[derive(Default)]
pub struct Seen {
    pub asked: Vec<Asked>,
    /// Each newOrder's `replaces` (`None`: the order had none).
    pub orders: Vec<Option<String>>,
}

pub struct AriFront {
    pub addr: SocketAddr,
    /// The directory URL farmgate's `acme.directory` takes.
    pub directory: String,
    pub seen: Arc<Mutex<Seen>>,
    /// Set: a newOrder with `replaces` is refused as `alreadyReplaced`.
    pub refuse_replaces: Arc<AtomicBool>,
}

struct Shared {
    pebble: SocketAddr,
    upstream: Arc<ClientConfig>,
    policy: Policy,
    seen: Arc<Mutex<Seen>>,
    /// Pebble's newOrder path, learned from its directory.
    new_order: Mutex<String>,
    refuse_replaces: Arc<AtomicBool>,
}

impl AriFront {
    pub async fn start(pebble: &Pebble, policy: Policy) -> AriFront {
        farmgate::tls::provider();
        let cert: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pebble.dir.join("cert.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(pebble.dir.join("key.pem")).unwrap();
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(cert, key)
            .unwrap();
        // HTTP/1.1 only: the Host header pebble reads travels as is.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&pebble.listener_ca).unwrap())
            .unwrap();
        let upstream = Arc::new(
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let refuse_replaces = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            refuse_replaces: refuse_replaces.clone(),
            pebble: pebble.listen,
            upstream,
            policy,
            seen: seen.clone(),
            new_order: Mutex::new(String::new()),
        });
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        AriFront {
            addr,
            directory: format!("https://{addr}/dir"),
            seen,
            refuse_replaces,
        }
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.seen.lock().unwrap().asked.clone()
    }

    pub fn orders(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().orders.clone()
    }
}

fn now() -> i64 {
    farmgate::tls::certs::unix_now()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap()
}

impl Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        if let Some(id) = path.strip_prefix("/renewal-info/") {
            return self.renewal_info(id);
        }
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (parts, body) = req.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let is_new_order = parts.method == http::Method::POST
            && *self.new_order.lock().unwrap() == path
            && !path.is_empty();
        let replaces =
            is_new_order.then(|| jws_payload(&body)["replaces"].as_str().map(str::to_string));
        if let Some(r) = &replaces {
            self.seen.lock().unwrap().orders.push(r.clone());
        }
        if matches!(replaces, Some(Some(_))) && self.refuse_replaces.load(Ordering::Relaxed) {
            let problem = serde_json::json!({
                "type": "urn:ietf:params:acme:error:alreadyReplaced",
                "detail": "the certificate was already replaced",
                "status": 409,
            });
            return reply(
                409,
                &[("content-type", "application/problem+json")],
                problem.to_string(),
            );
        }
        let (status, headers, mut body) = self
            .forward(Request::from_parts(parts, Full::new(body)))
            .await;
        if path == "/dir" {
            let mut dir: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let new_order = dir["newOrder"].as_str().unwrap();
            *self.new_order.lock().unwrap() = new_order.split_once(&host).unwrap().1.to_string();
            dir["renewalInfo"] = format!("https://{host}/renewal-info").into();
            body = Bytes::from(dir.to_string());
        }
        if let (Some(Some(id)), 201) = (&replaces, status.as_u16()) {
            let mut order: serde_json::Value = serde_json::from_slice(&body).unwrap();
            order["replaces"] = id.clone().into();
            body = Bytes::from(order.to_string());
        }
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        resp.headers_mut().remove(http::header::TRANSFER_ENCODING);
        resp
    }

    /// The request to pebble on a fresh connection, Host and all.
    async fn forward(
        &self,
        req: Request<Full<Bytes>>,
    ) -> (http::StatusCode, http::HeaderMap, Bytes) {
        let tcp = TcpStream::connect(self.pebble).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.upstream.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = send.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    fn renewal_info(&self, id: &str) -> Response<Full<Bytes>> {
        let mut seen = self.seen.lock().unwrap();
        let index = {
            let mut ids: Vec<&str> = Vec::new();
            for a in &seen.asked {
                if !ids.contains(&a.cert_id.as_str()) {
                    ids.push(&a.cert_id);
                }
            }
            ids.iter().position(|i| *i == id).unwrap_or(ids.len())
        };
        let at = now();
        let answer = (self.policy)(index);
        let window = match answer {
            Reply::Window {
                start_in, end_in, ..
            } => Some((at + start_in, at + end_in)),
            _ => None,
        };
        seen.asked.push(Asked {
            cert_id: id.to_string(),
            at,
            window,
        });
        match answer {
            Reply::Window { retry_after, .. } => {
                let (start, end) = window.unwrap();
                let body = serde_json::json!({
                    "suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)},
                    "explanationURL": "https://ca.farmgate.test/why",
                });
                let retry_after = retry_after.map(|s| s.to_string());
                let mut headers = vec![("content-type", "application/json")];
                if let Some(r) = &retry_after {
                    headers.push(("retry-after", r));
                }
                reply(200, &headers, body.to_string())
            }
            Reply::Status(code) => reply(code, &[], "the renewal information is down"),
            Reply::Garbage => reply(
                200,
                &[("content-type", "application/json"), ("retry-after", "60")],
                "{\"suggestedWindow\": \"soon\"",
            ),
        }
    }
}

/// The JSON payload of a flattened JWS (`{"protected", "payload", ...}`).
fn jws_payload(body: &[u8]) -> serde_json::Value {
    let jws: serde_json::Value = serde_json::from_slice(body).unwrap();
    let payload = URL_SAFE_NO_PAD
        .decode(jws["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap_or_default()
}
