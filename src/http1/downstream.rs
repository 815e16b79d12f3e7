//! The response head sent to a client, written into one buffer straight
//! from the backend's parsed head: status line, the backend's fields
//! without the hop-by-hop ones, the body re-framed for this client
//! (Content-Length as parsed, chunked for HTTP/1.1, until close for
//! HTTP/1.0), `Date` when the backend sent none, `Connection` as the
//! client connection goes on, and the proxy's own fields appended.

use super::fields::{put, ConnectionNames, Kind};
use super::upstream::push_decimal;
use super::{BodyKind, ResponseHead};

/// The client side of the answer.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The client connection may carry another request (it asked for
    /// keep-alive and the proxy is not closing it).
    pub keep_alive: bool,
    /// The `Date` value to send when the backend sent none
    /// ([`super::date::now`]).
    pub date: &'a [u8],
}

/// How the client receives the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBody {
    /// No body follows the head.
    None,
    /// Copied as it comes: exactly the Content-Length.
    Length(u64),
    /// Encoded chunked (the backend's chunks or its close-delimited body).
    Chunked,
    /// Copied until the backend closes; then the client connection closes.
    UntilClose,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub body: ClientBody,
    /// The client connection is closed after this response.
    pub close: bool,
    /// A 101 carried the upgrade: both connections become a tunnel.
    pub upgrade: bool,
}

/// Writes the client's response head for `head` into `out` (appended);
/// `extra` fields (an affinity cookie, `X-Cache`...) go last.
pub fn write_response<N, V>(
    head: &ResponseHead<'_>,
    client: &Client<'_>,
    extra: &[(N, V)],
    out: &mut Vec<u8>,
) -> Written
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut conn = ConnectionNames::new();
    let (mut upgrade_value, mut has_date) = (None, false);
    let bytes = head.bytes();
    for f in head.spans() {
        match f.kind {
            Kind::Connection => conn.add(f.value.get(bytes)),
            Kind::Upgrade => upgrade_value = upgrade_value.or(Some(f.value.get(bytes))),
            Kind::Date => has_date = true,
            _ => {}
        }
    }
    let status = head.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    let canonical = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    out.extend_from_slice(canonical.map_or(head.reason(), str::as_bytes));
    out.extend_from_slice(b"\r\n");
    // Fields passed on as they came (`name: value` CRLF, the usual form)
    // are copied a run of lines at a time: one copy for the lot, where
    // writing each field's four pieces was four.
    let mut run = 0..0;
    for f in head.spans() {
        let (name, value) = (f.name.get(bytes), f.value.get(bytes));
        if f.kind.hop_by_hop() || conn.names(name, || head.fields()) {
            continue;
        }
        let line = f.name.start as usize..f.value.end as usize + 2;
        let usual = f.value.start == f.name.end + 2
            && bytes.get(f.name.end as usize + 1) == Some(&b' ')
            && bytes.get(f.value.end as usize..line.end) == Some(b"\r\n");
        if !usual {
            out.extend_from_slice(&bytes[run.clone()]);
            run = 0..0;
            put(out, name, value);
        } else if run.end == line.start {
            run.end = line.end;
        } else {
            out.extend_from_slice(&bytes[run.clone()]);
            run = line;
        }
    }
    out.extend_from_slice(&bytes[run]);
    if head.is_interim() {
        out.extend_from_slice(b"\r\n");
        return Written {
            body: ClientBody::None,
            close: false,
            upgrade: false,
        };
    }
    let upgrade = status == 101 && conn.upgrade() && upgrade_value.is_some();
    let body = match head.body() {
        BodyKind::None => {
            // A HEAD or 304 answer's Content-Length describes the body
            // not sent; it goes on (not for 1xx and 204: none allowed).
            if let Some(n) = head
                .content_length()
                .filter(|_| status >= 200 && status != 204)
            {
                content_length(out, n);
            }
            ClientBody::None
        }
        BodyKind::Length(n) => {
            content_length(out, n);
            ClientBody::Length(n)
        }
        BodyKind::Chunked | BodyKind::UntilClose if client.minor >= 1 => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            ClientBody::Chunked
        }
        BodyKind::Chunked | BodyKind::UntilClose => ClientBody::UntilClose,
    };
    if !has_date {
        put(out, b"Date", client.date);
    }
    let close = !upgrade && (!client.keep_alive || body == ClientBody::UntilClose);
    if let Some(proto) = upgrade_value.filter(|_| upgrade) {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        put(out, b"Upgrade", proto);
    } else if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if client.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for (name, value) in extra {
        put(out, name.as_ref(), value.as_ref());
    }
    out.extend_from_slice(b"\r\n");
    Written {
        body,
        close,
        upgrade,
    }
}

fn content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "downstream_tests.rs"]
mod tests;
