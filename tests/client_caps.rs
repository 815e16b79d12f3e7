//! Who may connect and how much: `max_connections_per_ip` closes a
//! client's connection beyond its share; a listener's access lists close
//! refused clients' connections (lists from a file are reread on reload);
//! a rule's access lists answer 403; and a farm sends the PROXY protocol
//! v2 header to a server that parses it, reusing a connection only for the
//! client connection it names.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/raw.rs"]
mod raw;
use common::*;
use farmgate::farm::StateRegistry;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEEP_ALIVE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

fn config(b: &SocketAddr, listener: &str, farm: &str, top: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"127.0.0.1:0\"\n{listener}\
         admin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - address: \"{b}\"\n{farm}{top}"
    )
}

/// A connection that got a 200 head and stays open; None if closed first.
async fn served(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(KEEP_ALIVE).await.ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    head.starts_with(b"HTTP/1.1 200").then_some(s)
}

/// Did the listener close a new connection without answering?
async fn closed_unanswered(addr: SocketAddr) -> bool {
    let reply = raw::exchange(addr, KEEP_ALIVE, Duration::from_secs(5)).await;
    reply.statuses().is_empty()
}

#[tokio::test]
async fn a_client_beyond_its_connections_is_closed_until_one_ends() {
    let b = Backend::named("b").await;
    let fg = start(&config(&b.addr, "    max_connections_per_ip: 2\n", "", "")).await;
    let addr = fg.first_addr();
    let one = served(addr).await.expect("first connection");
    let _two = served(addr).await.expect("second connection");
    assert!(closed_unanswered(addr).await, "a third is closed");
    drop(one);
    wait_until(
        Duration::from_secs(5),
        "a connection again",
        || async move { served(addr).await.is_some() },
    )
    .await;
}

#[tokio::test]
async fn listener_access_lists_close_and_their_files_are_reread_on_reload() {
    let b = Backend::named("b").await;
    let dir = fresh_temp_dir("farmgate-access");
    let allow = dir.join("allow.txt");
    std::fs::write(&allow, "# the office\n10.0.0.0/8\n").unwrap();
    let listener = format!(
        "    access:\n      allow_files: [\"{}\"]\n",
        allow.display()
    );
    let path = dir.join("farmgate.yaml");
    std::fs::write(&path, config(&b.addr, &listener, "", "")).unwrap();
    let registry = Arc::new(StateRegistry::default());
    let snap = farmgate::config::load_file(&path, &registry).unwrap();
    let fg = farmgate::Running::start_watching(snap, registry, path.clone())
        .await
        .unwrap();
    let addr = fg.first_addr();
    assert!(closed_unanswered(addr).await, "127.0.0.1 is not allowed");
    assert_eq!(b.hits(), 0);

    std::fs::write(&allow, "10.0.0.0/8\n127.0.0.1   # this machine\n").unwrap();
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert!(served(addr).await.is_some(), "allowed after the reload");

    // Deny wins over allow.
    let both = format!("{listener}      deny: [\"127.0.0.0/8\"]\n");
    std::fs::write(&path, config(&b.addr, &both, "", "")).unwrap();
    assert!(farmgate::reload::reload(&fg.gateway, "admin").await.ok);
    assert!(closed_unanswered(addr).await);

    // A bad line names the file and line; the old config stays.
    std::fs::write(&allow, "127.0.0.1\nnot-an-address\n").unwrap();
    let event = farmgate::reload::reload(&fg.gateway, "admin").await;
    assert!(!event.ok);
    assert!(event.message.contains("allow.txt:2:"), "{}", event.message);
}

#[tokio::test]
async fn a_rules_access_lists_answer_403_for_what_it_matches() {
    let b = Backend::named("b").await;
    let rules = "rules:\n  - name: office-only\n    match: ^/admin\n    access: { allow: [\"10.0.0.0/8\"] }\n    action: none\n";
    let fg = start(&config(&b.addr, "", "", rules)).await;
    let c = client();
    let base = format!("http://{}", fg.first_addr());
    let (s, _, body) = get(&c, &format!("{base}/admin/users")).await;
    assert_eq!((s.as_u16(), body.as_str()), (403, "403 Forbidden\n"));
    assert_eq!(get(&c, &format!("{base}/public")).await.0.as_u16(), 200);
    assert_eq!(b.hits(), 1);
}

/// A server that expects the PROXY protocol: it parses the header with
/// farmgate's own listener parser, then answers each request on the
/// connection with the source the header named.
async fn proxy_protocol_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                use farmgate::listener::proxy_protocol::{read, Header};
                let source = match read(&mut s).await {
                    Ok(Header::Proxied { source, .. }) => source.to_string(),
                    _ => return,
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    head.clear();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{source}",
                        source.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn a_farm_sends_proxy_protocol_v2_to_servers_that_expect_it() {
    let (server, conns) = proxy_protocol_server().await;
    let fg = start(&config(&server, "", "    proxy_protocol: v2\n", "")).await;
    let addr = fg.first_addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let me = first.local_addr().unwrap().to_string();
    for _ in 0..3 {
        first.write_all(KEEP_ALIVE).await.unwrap();
        let (status, body) = raw::read_response(&mut first).await;
        assert_eq!((status, body.as_str()), (200, me.as_str()));
    }
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "one client connection's requests share its backend connection"
    );
    let mut second = TcpStream::connect(addr).await.unwrap();
    let other = second.local_addr().unwrap().to_string();
    second.write_all(KEEP_ALIVE).await.unwrap();
    let (status, body) = raw::read_response(&mut second).await;
    assert_eq!((status, body.as_str()), (200, other.as_str()));
    assert_eq!(conns.load(Ordering::SeqCst), 2, "never another client's");
}
