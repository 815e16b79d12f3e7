//! The upstream request head: the rules of `proxy::headers` (hop-by-hop
//! removal, X-Forwarded-* modes, trusted peers) on the written bytes.

use super::*;
use crate::http1::{Parsed, RequestParser};

const FWD: Forwarding<'static> = Forwarding {
    mode: ForwardedMode::Append,
    trusted: false,
    client_ip: b"10.1.1.1",
    proto: b"http",
    host: None,
    target: None,
};

const NO_SET: &[(&[u8], &[u8])] = &[];

fn write_with(req: &str, fwd: &Forwarding<'_>, set: &[(&[u8], &[u8])]) -> (String, Sent) {
    let mut p = RequestParser::new(8192);
    assert!(
        matches!(p.parse(req.as_bytes()), Ok(Parsed::Head(_))),
        "{req:?}"
    );
    let mut out = Vec::new();
    let sent = write_request(&p.head(req.as_bytes()), fwd, set, &mut out);
    // What we send must pass our own strict reading.
    let mut q = RequestParser::new(8192);
    assert_eq!(
        q.parse(&out),
        Ok(Parsed::Head(out.len())),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(q.head(&out).body(), p.head(req.as_bytes()).body());
    (String::from_utf8_lossy(&out).into_owned(), sent)
}

fn write(req: &str, fwd: &Forwarding<'_>) -> String {
    write_with(req, fwd, NO_SET).0
}

#[test]
fn hop_by_hop_and_connection_named_fields_are_dropped() {
    let (out, sent) = write_with(
        "POST /u HTTP/1.1\r\nHost: a\r\nConnection: close, x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n",
        &FWD,
        NO_SET,
    );
    assert_eq!(
        out,
        "POST /u HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\nX-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(
        sent,
        Sent {
            upgrade: false,
            trailers: true
        }
    );
}

#[test]
fn framing_is_rewritten_from_the_parsed_length() {
    // `Connection` cannot take the Content-Length away.
    let out = write(
        "POST / HTTP/1.1\r\nConnection: content-length\r\ncontent-length: 3\r\n\r\n",
        &FWD,
    );
    assert!(out.contains("\r\nContent-Length: 3\r\n"), "{out}");
    let out = write("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &FWD);
    assert!(out.contains("\r\nContent-Length: 0\r\n"), "{out}");
}

#[test]
fn upgrade_is_carried_on() {
    let (out, sent) = write_with(
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n",
        &FWD,
        NO_SET,
    );
    assert!(sent.upgrade);
    assert!(
        out.ends_with("Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
        "{out}"
    );
    assert!(out.contains("Sec-WebSocket-Key: k\r\n"));
    // Without Connection naming it, or in HTTP/1.0: no upgrade.
    let (out, sent) = write_with("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", &FWD, NO_SET);
    assert!(!sent.upgrade && !out.contains("pgrade"), "{out}");
    let (_, sent) = write_with(
        "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        &FWD,
        NO_SET,
    );
    assert!(!sent.upgrade);
}

#[test]
fn forwarded_for_append_replace_off() {
    let req = "GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nX-Forwarded-Proto: https\r\n\r\n";
    let out = write(req, &FWD);
    assert!(
        out.contains("X-Forwarded-For: 1.2.3.4, 5.6.7.8, 10.1.1.1\r\n"),
        "{out}"
    );
    assert_eq!(out.matches("orwarded-For").count(), 1, "{out}");
    assert!(
        out.contains("X-Forwarded-Proto: http\r\n") && !out.contains("https"),
        "{out}"
    );
    assert!(out.contains("X-Forwarded-Host: example.com\r\n"), "{out}");

    let replace = Forwarding {
        mode: ForwardedMode::Replace,
        ..FWD
    };
    let out = write(req, &replace);
    assert!(out.contains("X-Forwarded-For: 10.1.1.1\r\n"), "{out}");
    assert!(!out.contains("1.2.3.4"), "{out}");

    let off = Forwarding {
        mode: ForwardedMode::Off,
        ..FWD
    };
    let out = write(req, &off);
    assert!(
        out.contains(
            "X-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nX-Forwarded-Proto: https\r\n"
        ),
        "{out}"
    );
    assert!(
        !out.contains("10.1.1.1") && !out.contains("Forwarded-Host"),
        "{out}"
    );
}

#[test]
fn trusted_peer_keeps_its_forwarded_fields() {
    let trusted = Forwarding {
        mode: ForwardedMode::Replace,
        trusted: true,
        client_ip: b"10.0.0.2",
        ..FWD
    };
    let out = write(
        "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop\r\n\r\n",
        &trusted,
    );
    assert!(
        out.contains("X-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n"),
        "{out}"
    );
    assert!(
        out.contains("X-Forwarded-Proto: https\r\n") && out.contains("X-Forwarded-Host: shop\r\n"),
        "{out}"
    );
    assert_eq!(out.matches("Forwarded-Proto").count(), 1, "{out}");
}

#[test]
fn host_target_and_rule_overrides() {
    let fwd = Forwarding {
        host: Some(b"10.0.0.7:8080"),
        target: Some(b"/v2/items?x=1"),
        ..FWD
    };
    let set: &[(&[u8], &[u8])] = &[
        (b"x-tenant", b"blue"),
        (b"x-internal", b""),
        (b"x-forwarded-proto", b"https"),
    ];
    let (out, _) = write_with(
        "GET /items HTTP/1.1\r\nHost: shop\r\nX-Internal: secret\r\nX-Tenant: red\r\n\r\n",
        &fwd,
        set,
    );
    assert_eq!(
        out,
        "GET /v2/items?x=1 HTTP/1.1\r\nHost: 10.0.0.7:8080\r\nX-Forwarded-For: 10.1.1.1\r\nX-Forwarded-Host: shop\r\nx-tenant: blue\r\nx-forwarded-proto: https\r\n\r\n"
    );
}

#[test]
fn absolute_form_targets_become_origin_form() {
    let out = write(
        "GET http://user@Shop.example:81/a/b?c=d HTTP/1.1\r\n\r\n",
        &FWD,
    );
    assert!(
        out.starts_with("GET /a/b?c=d HTTP/1.1\r\nHost: Shop.example:81\r\n"),
        "{out}"
    );
    assert!(
        out.contains("X-Forwarded-Host: Shop.example:81\r\n"),
        "{out}"
    );
    let out = write("GET http://shop HTTP/1.1\r\nHost: other\r\n\r\n", &FWD);
    assert!(
        out.starts_with("GET / HTTP/1.1\r\nHost: other\r\n"),
        "{out}"
    );
    let out = write("GET https://shop?q=1 HTTP/1.1\r\n\r\n", &FWD);
    assert!(
        out.starts_with("GET /?q=1 HTTP/1.1\r\nHost: shop\r\n"),
        "{out}"
    );
    let out = write("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &FWD);
    assert!(out.starts_with("OPTIONS * HTTP/1.1\r\n"), "{out}");
}

#[test]
fn many_connection_fields_still_name_their_fields() {
    let out = write(
        "GET / HTTP/1.1\r\nConnection: a\r\nConnection: b\r\nConnection: c\r\nConnection: d\r\nConnection: x-fifth\r\nX-Fifth: 1\r\nX-Sixth: 2\r\n\r\n",
        &FWD,
    );
    assert!(
        !out.contains("X-Fifth") && out.contains("X-Sixth: 2\r\n"),
        "{out}"
    );
}
