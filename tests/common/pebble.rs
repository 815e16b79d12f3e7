//! A real ACME server for tests: Debian's `pebble` (Let's Encrypt's test
//! CA) on 127.0.0.1 ephemeral ports with its own config, and
//! `pebble-challtestsrv` (same package) as its DNS server answering every
//! name with 127.0.0.1, so validations really reach farmgate: pebble's
//! `httpPort` / `tlsPort` point at farmgate's listeners. Validation is never
//! skipped (no PEBBLE_VA_ALWAYS_VALID).
#![allow(dead_code, clippy::unwrap_used)]

use crate::process::free_port;
use farmgate::tls::devcerts::{write_file, DevCa};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PEBBLE: &str = "/usr/bin/pebble";
pub const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// Fails (never skips) naming the Debian package when pebble is missing.
pub fn require_pebble() {
    for p in [PEBBLE, CHALLTESTSRV] {
        assert!(
            std::path::Path::new(p).exists(),
            "{p} is missing: install the Debian package `pebble` (apt-get install pebble, or scripts/test.sh)"
        );
    }
}

pub struct Pebble {
    pub dir: PathBuf,
    /// The directory URL farmgate's `acme.directory` takes.
    pub directory: String,
    /// The CA of pebble's own HTTPS listener (farmgate's `acme.ca`).
    pub listener_ca: PathBuf,
    pub listen: SocketAddr,
    pub management: SocketAddr,
    dns: SocketAddr,
    http_port: u16,
    tls_port: u16,
    validity_secs: u64,
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
    ca: DevCa,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on
    /// `tls_port` of 127.0.0.1, issuing certificates valid `validity_secs`.
    pub async fn start(http_port: u16, tls_port: u16, validity_secs: u64) -> Pebble {
        require_pebble();
        let dir = crate::common::fresh_temp_dir("farmgate-pebble");
        let ca = DevCa::generate("pebble listener test CA").unwrap();
        let listener_ca = dir.join("listener-ca.pem");
        std::fs::write(&listener_ca, &ca.cert_pem).unwrap();
        let issued = ca.issue(&["localhost", "127.0.0.1"], 30).unwrap();
        write_file(&dir.join("cert.pem"), &issued.cert_pem, false).unwrap();
        write_file(&dir.join("key.pem"), &issued.key_pem, true).unwrap();
        let listen = free_port();
        let mut p = Pebble {
            directory: format!("https://127.0.0.1:{}/dir", listen.port()),
            listener_ca,
            listen,
            management: free_port(),
            dns: free_port(),
            http_port,
            tls_port,
            validity_secs,
            pebble: None,
            challtestsrv: None,
            dir,
            ca,
        };
        p.start_dns();
        p.start_pebble().await;
        p
    }

    fn start_dns(&mut self) {
        let child = Command::new(CHALLTESTSRV)
            .args(["-dns01", &self.dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &free_port().to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.challtestsrv = Some(child);
    }

    async fn start_pebble(&mut self) {
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": self.listen.to_string(),
                "managementListenAddress": self.management.to_string(),
                "certificate": self.dir.join("cert.pem"),
                "privateKey": self.dir.join("key.pem"),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": self.validity_secs,
            }
        });
        let path = self.dir.join("pebble.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let log = std::fs::File::create(self.dir.join("pebble.log")).unwrap();
        let child = Command::new(PEBBLE)
            .arg("-config")
            .arg(&path)
            .args(["-dnsserver", &self.dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.pebble = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Both listeners: the management one serves the root (`root()`).
        while tokio::net::TcpStream::connect(self.listen).await.is_err()
            || tokio::net::TcpStream::connect(self.management)
                .await
                .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pebble's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// Stops pebble (its state is gone: a new start is a new CA).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.start_pebble().await;
    }

    /// The root that signs what pebble issues (random per pebble start).
    pub async fn root(&self) -> RootCertStore {
        let mut trust = RootCertStore::empty();
        trust
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let config = ClientConfig::builder()
            .with_root_certificates(trust)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.management)
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/roots/0")
            .header(http::header::HOST, "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let pem = resp.into_body().collect().await.unwrap().to_bytes();
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        if let Some(mut c) = self.challtestsrv.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
