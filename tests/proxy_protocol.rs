//! The PROXY protocol on listeners behind a layer-4 balancer: versions 1
//! and 2 (TCP4, TCP6, LOCAL/UNKNOWN, TLVs skipped) on plain and TLS
//! listeners make the header's source the client (X-Forwarded-For); a
//! missing or malformed header, or a source not trusted, closes the
//! connection without an answer.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/raw.rs"]
mod raw;
#[path = "common/tls.rs"]
mod tls;
use common::*;
use farmgate::listener::proxy_protocol::encode_v2;
use raw::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn config(backend: &Backend, trusted: &str, tls: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n    proxy_protocol:\n      trusted_sources: [{trusted}]\n{tls}\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n",
        backend.addr
    )
}

/// Sends `bytes` (a PROXY header and a request) and reads until close.
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Reply {
    exchange(addr, bytes, Duration::from_secs(5)).await
}

fn xff(b: &Backend) -> String {
    b.last_seen().headers["x-forwarded-for"]
        .to_str()
        .unwrap()
        .to_string()
}

fn v2(source: &str, destination: &str, tlv: bool) -> Vec<u8> {
    let mut h = encode_v2(source.parse().unwrap(), destination.parse().unwrap());
    if tlv {
        // PP2_TYPE_AUTHORITY "lb", then a NOOP: skipped.
        let len = u16::from_be_bytes([h[14], h[15]]) + 5 + 3;
        h[14..16].copy_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&[0x02, 0x00, 0x02, b'l', b'b', 0x04, 0x00, 0x00]);
    }
    h
}

#[tokio::test]
async fn headers_name_the_client_on_a_plain_listener() {
    let b = Backend::named("b").await;
    let fg = start(&config(&b, "\"127.0.0.1\"", "")).await;
    let addr = fg.first_addr();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 80\r\n".to_vec(),
            "192.0.2.7",
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n".to_vec(),
            "2001:db8::7",
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
        (
            v2("198.51.100.9:1234", "10.0.0.1:80", false),
            "198.51.100.9",
        ),
        (
            v2("[2001:db8::9]:1234", "[2001:db8::1]:80", true),
            "2001:db8::9",
        ),
    ];
    for (header, client) in cases {
        let mut bytes = header.clone();
        bytes.extend_from_slice(REQUEST);
        let reply = send_raw(addr, &bytes).await;
        assert_eq!(
            reply.status(),
            200,
            "{:?}",
            String::from_utf8_lossy(&header)
        );
        assert_eq!(xff(&b), client);
    }
    // v2 LOCAL (the balancer's own health check): the peer stays.
    let mut local = v2("192.0.2.1:1", "192.0.2.2:2", false);
    local[12] = 0x20;
    local.extend_from_slice(REQUEST);
    assert_eq!(send_raw(addr, &local).await.status(), 200);
    assert_eq!(xff(&b), "127.0.0.1");
    // The header and the request may arrive in pieces.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for piece in [
        &b"PROXY TCP4 192.0."[..],
        b"2.8 10.0.0.1 5 80\r",
        b"\nGET / HT",
        b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(xff(&b), "192.0.2.8");
}

#[tokio::test]
async fn missing_malformed_or_untrusted_headers_close_the_connection() {
    let b = Backend::named("b").await;
    let fg = start(&config(&b, "\"127.0.0.1\"", "")).await;
    let addr = fg.first_addr();
    for bad in [
        REQUEST.to_vec(),
        b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\nGET / HTTP/1.1\r\n\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 80\r\n".to_vec(),
        b"PROXY TCP4 not-an-ip 10.0.0.1 1 80\r\n".to_vec(),
        [b"PROXY TCP4 ".as_slice(), &[b'1'; 200], b"\r\n"].concat(),
        {
            let mut h = v2("192.0.2.1:1", "192.0.2.2:2", false);
            h[12] = 0x11; // version 1 in a v2 header
            h
        },
        {
            let mut h = v2("192.0.2.1:1", "192.0.2.2:2", false);
            h[14..16].copy_from_slice(&4u16.to_be_bytes()); // too short for TCP4
            h.truncate(20);
            h
        },
    ] {
        let reply = send_raw(addr, &bad).await;
        assert!(
            reply.statuses().is_empty(),
            "{:?} answered {:?}",
            String::from_utf8_lossy(&bad),
            reply.statuses()
        );
    }
    let served = b.hits();
    assert_eq!(served, 0, "nothing reached the backend");

    // Only trusted sources may connect: from 127.0.0.1 to a listener that
    // trusts 10.0.0.0/8, even a valid header is refused.
    let fg = start(&config(&b, "\"10.0.0.0/8\"", "")).await;
    let mut bytes = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 80\r\n".to_vec();
    bytes.extend_from_slice(REQUEST);
    assert!(send_raw(fg.first_addr(), &bytes)
        .await
        .statuses()
        .is_empty());
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn a_tls_listener_reads_the_header_before_the_handshake() {
    let b = Backend::named("b").await;
    let certs = tls::CertDir::new();
    let (cert, key) = certs.issue("site", &["site.test"]);
    let tls_section = format!(
        "    tls:\n      certificates:\n        - cert: \"{}\"\n          key: \"{}\"\n",
        cert.display(),
        key.display()
    );
    let fg = start(&config(&b, "\"127.0.0.0/8\"", &tls_section)).await;
    for header in [
        b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 443\r\n".to_vec(),
        v2("203.0.113.6:40000", "10.0.0.1:443", true),
    ] {
        let mut tcp = TcpStream::connect(fg.first_addr()).await.unwrap();
        tcp.write_all(&header).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("site.test").unwrap();
        let mut s = tokio_rustls::TlsConnector::from(certs.client(&["http/1.1"]))
            .connect(name, tcp)
            .await
            .unwrap();
        s.write_all(REQUEST).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(xff(&b), "203.0.113.6");
    assert_eq!(b.hits(), 2);
}
