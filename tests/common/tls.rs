//! TLS helpers for end-to-end tests: certificates made with farmgate's own
//! dev CA code in a temp dir, a rustls client with SNI and ALPN, HTTP/1.1
//! and HTTP/2 requests over one TLS connection, and TLS backends.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use farmgate::tls::devcerts::DevCa;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// A temp directory with a CA that issues certificates into it; removed on drop.
pub struct CertDir {
    pub dir: PathBuf,
    pub ca: DevCa,
}

impl CertDir {
    pub fn new() -> CertDir {
        farmgate::tls::provider();
        let dir = crate::common::fresh_temp_dir("farmgate-tls");
        let ca = DevCa::generate("farmgate test CA").unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
        CertDir { dir, ca }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues a certificate for `names` as `<stem>.crt` / `<stem>.key`.
    pub fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let issued = self.ca.issue(names, 30).unwrap();
        let cert = self.dir.join(format!("{stem}.crt"));
        let key = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert, issued.cert_pem).unwrap();
        std::fs::write(&key, issued.key_pem).unwrap();
        (cert, key)
    }

    /// Issues a client certificate (mutual TLS) with common name `cn` and
    /// serial number `serial` as `<stem>.crt` / `<stem>.key`.
    pub fn issue_client(&self, stem: &str, cn: &str, serial: u64) -> (PathBuf, PathBuf) {
        use farmgate::tls::devcerts::DnType;
        let issued = self
            .ca
            .issue_client(
                &[
                    (DnType::CommonName, cn),
                    (DnType::OrganizationName, "farmgate tests"),
                ],
                serial,
                30,
            )
            .unwrap();
        let cert = self.dir.join(format!("{stem}.crt"));
        let key = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert, issued.cert_pem).unwrap();
        std::fs::write(&key, issued.key_pem).unwrap();
        (cert, key)
    }

    /// Replaces `path` atomically (write aside, then rename over it), the
    /// way certificate renewal tools do.
    pub fn replace(&self, path: &Path, contents: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// Roots that trust this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }

    /// A client that trusts this CA and offers `alpn`.
    pub fn client(&self, alpn: &[&str]) -> Arc<ClientConfig> {
        let mut c = ClientConfig::builder()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        Arc::new(c)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client that accepts any certificate (to look at what a server sends
/// for a name it does not have), optionally without SNI.
pub fn accept_any_client(sni: bool) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    c.enable_sni = sni;
    Arc::new(c)
}

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Opens a TLS connection to `addr`, sending `name` as SNI.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The end-entity certificate the server presented.
pub fn peer_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// The DNS names of the certificate the server presented.
pub fn peer_names(s: &TlsStream<TcpStream>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let der = peer_cert(s);
    let (_, x509) = X509Certificate::from_der(der.as_ref()).unwrap();
    let san = x509.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

pub fn alpn(s: &TlsStream<TcpStream>) -> Option<String> {
    s.get_ref()
        .1
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// An HTTP sender on one TLS connection: HTTP/2 when ALPN chose h2.
pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    pub async fn new(s: TlsStream<TcpStream>) -> Sender {
        let h2 = alpn(&s).as_deref() == Some("h2");
        let io = TokioIo::new(s);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Sender::H1(send)
        }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let fut = async {
            match self {
                Sender::H1(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
                Sender::H2(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("request timed out")
    }

    /// GET `path` with `host`; returns status, version and body text.
    pub async fn get(&mut self, host: &str, path: &str) -> (u16, http::Version, String) {
        let req = request(self, host, path);
        let resp = self.send(req).await;
        let status = resp.status().as_u16();
        let version = resp.version();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, version, String::from_utf8_lossy(&body).into_owned())
    }
}

/// A GET request in the form the sender's protocol wants (absolute URI for h2).
pub fn request(sender: &Sender, host: &str, path: &str) -> Request<Full<Bytes>> {
    match sender {
        Sender::H1(_) => Request::get(path)
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Sender::H2(_) => Request::get(format!("https://{host}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    }
}

/// What a TLS backend saw of each handshake: SNI, ALPN and the client
/// certificate (DER) if one was presented.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub client_cert: Option<Vec<u8>>,
}

/// A real HTTPS backend on 127.0.0.1 serving `cert`/`key`; answers 200
/// `secure <name>`. Returns its address and what it saw per connection.
pub async fn tls_backend(
    name: &str,
    cert: &Path,
    key: &Path,
) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    tls_backend_with(name, cert, key, None).await
}

/// [`tls_backend`] that, with `client_ca`, demands a client certificate
/// signed by that CA (mutual TLS): a client without one fails the handshake.
pub async fn tls_backend_with(
    name: &str,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    farmgate::tls::provider();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let name: Arc<str> = name.into();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let conn = tls.get_ref().1;
                seen.lock().unwrap().push(Seen {
                    sni: conn.server_name().map(str::to_string),
                    alpn: conn
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                    client_cert: conn
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.to_vec()),
                });
                let svc = service_fn(move |req: Request<Incoming>| {
                    let name = name.clone();
                    async move {
                        let proto = req
                            .headers()
                            .get("x-forwarded-proto")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                            "secure {name} (x-forwarded-proto {proto})"
                        )))))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The YAML of a TLS listener on port 0 serving `certs` (cert, key) pairs.
pub fn tls_listener_yaml(name: &str, certs: &[(PathBuf, PathBuf)], extra: &str) -> String {
    let mut s =
        format!("  - name: {name}\n    bind: \"127.0.0.1:0\"\n    tls:\n      certificates:\n");
    for (c, k) in certs {
        s.push_str(&format!(
            "        - cert: \"{}\"\n          key: \"{}\"\n",
            c.display(),
            k.display()
        ));
    }
    s.push_str(extra);
    s
}
