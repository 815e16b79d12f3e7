//! The fast path's backend request head written straight from the
//! client's request, with what `forward::prepare` would have done to it
//! applied on the way (hop-by-hop fields dropped, `TE: trailers`, `Host`,
//! the X-Forwarded-* family, the client certificate field): the request's
//! `HeaderMap` is read once and never rewritten, which spared the
//! removals and insertions (hashing, moving entries) that preparing it
//! cost on every request. A head this writer does not handle
//! ([`handles`]: `Connection` naming other fields, an h2c settings field,
//! an upgrade) is prepared as before and written by [`write_prepared`].
//! A differential test holds the two ways to the same fields.

use super::headers::{ClientSide, HTTP2_SETTINGS, X_FORWARDED_FOR};
use super::spec::{ForwardedFor, ProxySpec};
use crate::farm::Server;
use http::header::{self, HeaderMap};

/// The request line: origin form, HTTP/1.1.
fn request_line(up: &mut Vec<u8>, parts: &http::request::Parts) {
    up.clear();
    up.extend_from_slice(parts.method.as_str().as_bytes());
    up.push(b' ');
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    up.extend_from_slice(if pq.is_empty() { b"/" } else { pq.as_bytes() });
    up.extend_from_slice(b" HTTP/1.1\r\n");
}

/// The head's end: `Host` per server unless `preserve_host`, the hop's
/// `traceparent`, the empty line.
fn finish(
    up: &mut Vec<u8>,
    server: &Server,
    preserve: bool,
    trace: Option<&super::headers::Trace<'_>>,
) {
    if !preserve {
        push(up, b"host", server.host_header.as_bytes());
    }
    if let Some(t) = trace {
        push(up, b"traceparent", &t.ctx.traceparent());
    }
    up.extend_from_slice(b"\r\n");
}

/// The backend's request head from a head `forward::prepare` rewrote.
pub fn write_prepared(
    up: &mut Vec<u8>,
    parts: &http::request::Parts,
    server: &Server,
    preserve: bool,
    trace: Option<&super::headers::Trace<'_>>,
) {
    request_line(up, parts);
    for (name, value) in &parts.headers {
        if !preserve && name == header::HOST {
            continue;
        }
        push(up, name.as_str().as_bytes(), value.as_bytes());
    }
    finish(up, server, preserve, trace);
}

/// Can [`write_unprepared`] write this head? Not when `Connection` names
/// fields to drop beyond the fixed hop-by-hop ones, nor with an h2c
/// settings field, nor for an upgrade (these go through `prepare`).
pub fn handles(parts: &http::request::Parts) -> bool {
    let h = &parts.headers;
    if h.contains_key(&HTTP2_SETTINGS)
        || parts
            .extensions
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some()
    {
        return false;
    }
    let mut close = false;
    let only_own = h.get_all(header::CONNECTION).iter().all(|v| {
        v.as_bytes().split(|&b| b == b',').all(|t| {
            let t = t.trim_ascii();
            close |= t.eq_ignore_ascii_case(b"close");
            t.is_empty()
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"keep-alive")
        })
    });
    // `Connection: close` names a field `close` too, dropped if present.
    only_own && !(close && h.contains_key("close"))
}

/// What the client's head holds that preparing it would change.
#[derive(Default)]
struct Present {
    transfer_encoding: bool,
    te: bool,
    host: bool,
    forwarded_for: bool,
    forwarded_proto: bool,
    forwarded_host: bool,
}

fn present(h: &HeaderMap) -> Present {
    let mut p = Present::default();
    for name in h.keys() {
        match role(name) {
            Role::TransferEncoding => p.transfer_encoding = true,
            Role::Te => p.te = true,
            Role::Host => p.host = true,
            Role::ForwardedFor => p.forwarded_for = true,
            Role::ForwardedProto => p.forwarded_proto = true,
            Role::ForwardedHost => p.forwarded_host = true,
            Role::HopByHop | Role::ContentLength | Role::Other => {}
        }
    }
    p
}

/// What a name is to this writer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// One of the fixed hop-by-hop fields `headers::strip_hop_by_hop`
    /// drops, but the two below.
    HopByHop,
    Te,
    TransferEncoding,
    ContentLength,
    Host,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
    Other,
}

/// A name's [`Role`], from the kind the HTTP/1 engine tells names by (a
/// chain of `HeaderName` compares cost ~140 instructions a field). The
/// differential test holds it to `headers::HOP_BY_HOP` and `prepare`.
fn role(name: &header::HeaderName) -> Role {
    use crate::http1::FieldKind as K;
    match crate::http1::field_kind(name.as_str().as_bytes()) {
        K::Connection | K::KeepAlive | K::ProxyConnection | K::Upgrade => Role::HopByHop,
        K::Te => Role::Te,
        K::TransferEncoding => Role::TransferEncoding,
        K::ContentLength => Role::ContentLength,
        K::Host => Role::Host,
        K::XForwardedFor => Role::ForwardedFor,
        K::XForwardedProto => Role::ForwardedProto,
        K::XForwardedHost => Role::ForwardedHost,
        K::Date | K::Expect | K::Other => Role::Other,
    }
}

/// The backend's request head for a head [`handles`] accepts, as
/// `forward::prepare` then [`write_prepared`] would write it (the same
/// fields; fields of different names may come in another order, which
/// RFC 9110 §5.3 leaves without meaning).
pub fn write_unprepared(
    up: &mut Vec<u8>,
    parts: &http::request::Parts,
    server: &Server,
    spec: &ProxySpec,
    client: &ClientSide<'_>,
    trace: Option<&super::headers::Trace<'_>>,
) {
    let h = &parts.headers;
    let preserve = spec.preserve_host;
    let p = present(h);
    let trailers =
        (p.te && super::headers::wants_trailers(h)) || parts.version == http::Version::HTTP_2;
    let fwd = spec.forwarded_for != ForwardedFor::Off;
    let keep_for =
        p.forwarded_for && (client.trusted || spec.forwarded_for != ForwardedFor::Replace);
    let keep_proto = p.forwarded_proto && (client.trusted || !fwd);
    let keep_fhost = p.forwarded_host && (client.trusted || !fwd);
    request_line(up, parts);
    for (name, value) in h {
        let skip = match role(name) {
            Role::HopByHop | Role::Te | Role::TransferEncoding => true,
            Role::ContentLength => p.transfer_encoding,
            Role::Host => !preserve,
            Role::ForwardedFor => fwd,
            Role::ForwardedProto => !keep_proto,
            Role::ForwardedHost => !keep_fhost,
            Role::Other => false,
        } || *name == spec.client_cert_header;
        if !skip {
            push(up, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if trailers {
        push(up, b"te", b"trailers");
    }
    // The Host the client asked for: its field, or the target's authority.
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    let host = if p.host {
        h.get(header::HOST).map(|v| v.as_bytes())
    } else {
        authority
    };
    if preserve && !p.host {
        if let Some(a) = authority {
            push(up, b"host", a);
        }
    }
    if fwd {
        up.extend_from_slice(b"x-forwarded-for: ");
        if keep_for {
            for v in h.get_all(&X_FORWARDED_FOR) {
                up.extend_from_slice(v.as_bytes());
                up.extend_from_slice(b", ");
            }
        }
        up.extend_from_slice(client.ip.as_bytes());
        up.extend_from_slice(b"\r\n");
        if !keep_proto {
            push(up, b"x-forwarded-proto", client.proto.as_bytes());
        }
        if !keep_fhost {
            if let Some(host) = host {
                push(up, b"x-forwarded-host", host);
            }
        }
    }
    if let Some(cert) = client.cert {
        push(
            up,
            spec.client_cert_header.as_str().as_bytes(),
            cert.as_bytes(),
        );
    }
    finish(up, server, preserve, trace);
}

fn push(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "fast_head_tests.rs"]
mod tests;
