//! The client's response head: re-framing per client version, Date,
//! Connection, hop-by-hop removal, upgrades.

use super::*;
use crate::http1::ResponseParser;

const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

fn client(minor: u8, keep_alive: bool) -> Client<'static> {
    Client {
        minor,
        keep_alive,
        date: DATE,
    }
}

fn write(
    resp: &str,
    head_request: bool,
    c: &Client<'_>,
    extra: &[(&str, &str)],
) -> (String, Written) {
    let mut p = ResponseParser::new(8192);
    assert!(
        matches!(p.parse(resp.as_bytes(), head_request), Ok(Some(_))),
        "{resp:?}"
    );
    let mut out = Vec::new();
    let w = write_response(&p.head(resp.as_bytes()), c, extra, &mut out);
    // What we send must pass our own strict reading.
    let mut q = ResponseParser::new(8192);
    assert_eq!(
        q.parse(&out, head_request),
        Ok(Some(out.len())),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    (String::from_utf8_lossy(&out).into_owned(), w)
}

#[test]
fn length_body_with_date_and_extras() {
    let (out, w) = write(
        "HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n",
        false,
        &client(1, true),
        &[("Set-Cookie", "farmgate_web=web2"), ("X-Cache", "MISS")],
    );
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nSet-Cookie: farmgate_web=web2\r\nX-Cache: MISS\r\n\r\n"
    );
    assert_eq!(
        w,
        Written {
            body: ClientBody::Length(5),
            close: false,
            upgrade: false
        }
    );
}

#[test]
fn chunked_and_close_delimited_bodies_per_client_version() {
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: x\r\n\r\n";
    let until_close = "HTTP/1.0 200 OK\r\nDate: x\r\n\r\n";
    for resp in [chunked, until_close] {
        let (out, w) = write(resp, false, &client(1, true), &[]);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(w.body, ClientBody::Chunked);
        assert!(!w.close);
        let (out, w) = write(resp, false, &client(0, true), &[]);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nDate: x\r\nConnection: close\r\n\r\n"
        );
        assert_eq!((w.body, w.close), (ClientBody::UntilClose, true));
    }
}

#[test]
fn connection_field_follows_the_client_connection() {
    let resp = "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n";
    let (out, w) = write(resp, false, &client(1, false), &[]);
    assert_eq!(
        out,
        "HTTP/1.1 204 No Content\r\nDate: x\r\nConnection: close\r\n\r\n"
    );
    assert!(w.close);
    let (out, _) = write(resp, false, &client(0, true), &[]);
    assert_eq!(
        out,
        "HTTP/1.1 204 No Content\r\nDate: x\r\nConnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn head_and_304_keep_their_content_length() {
    let (out, w) = write(
        "HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 42\r\n\r\n",
        true,
        &client(1, true),
        &[],
    );
    assert!(out.contains("Content-Length: 42\r\n"), "{out}");
    assert_eq!(w.body, ClientBody::None);
    let (out, _) = write(
        "HTTP/1.1 304 Not Modified\r\nDate: x\r\nContent-Length: 42\r\n\r\n",
        false,
        &client(1, true),
        &[],
    );
    assert!(out.contains("Content-Length: 42\r\n"), "{out}");
}

#[test]
fn interim_and_upgrade() {
    let (out, w) = write(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
        false,
        &client(1, true),
        &[],
    );
    assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
    assert_eq!(w.body, ClientBody::None);
    let (out, w) = write(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\n",
        false,
        &client(1, true),
        &[],
    );
    assert!(w.upgrade && !w.close);
    assert!(out.ends_with("Sec-WebSocket-Accept: a\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), "{out}");
}

#[test]
fn unknown_status_keeps_the_backend_reason() {
    let (out, _) = write(
        "HTTP/1.1 599 Custom Thing\r\nDate: x\r\nContent-Length: 0\r\n\r\n",
        false,
        &client(1, true),
        &[],
    );
    assert!(out.starts_with("HTTP/1.1 599 Custom Thing\r\n"), "{out}");
}
