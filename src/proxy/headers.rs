//! Request and response header rewriting for forwarding: hop-by-hop removal
//! (RFC 9110 §7.6.1), the X-Forwarded-* family, the trace context.

use super::spec::{ForwardedFor, ProxySpec};
use crate::ground::trace_context::TraceContext;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub use crate::ground::net::X_FORWARDED_FOR;
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers: Connection and every header it names, plus
/// Keep-Alive, Proxy-Connection, TE, Transfer-Encoding and Upgrade (RFC 9110
/// §7.6.1). Works for requests and responses alike. A Content-Length
/// that came with a Transfer-Encoding goes too.
///
/// `Trailer` is kept: RFC 9110 §6.6.2 makes it end-to-end, and HTTP/1.1
/// peers only receive the trailer fields it declares. A request's
/// `TE: trailers` is re-sent by us (we accept trailers), see
/// [`wants_trailers`].
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass of cheap name compares finds what is present: six hashed
    // removals of mostly absent names cost more than the rest of the
    // rewrite (profiled), and most heads carry at most `Connection`.
    let mut found = 0u8;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            found |= 1 << i;
        }
    }
    if found == 0 {
        return;
    }
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and a
    // message with both must lose its Content-Length before it is
    // forwarded. hyper decoded the chunked body; the message is re-framed
    // on the other side. Kept, a stale Content-Length would cut the body.
    const TRANSFER_ENCODING_BIT: u8 = 1 << 4;
    if found & TRANSFER_ENCODING_BIT != 0 {
        headers.remove(header::CONTENT_LENGTH);
    }
    if found & 1 != 0 {
        // Connection may name other headers ("Connection: close, X-Foo").
        let mut named = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            if let Ok(s) = value.to_str() {
                for token in s.split(',') {
                    let token = token.trim();
                    if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                        named.push(name);
                    }
                }
            }
        }
        for name in named {
            headers.remove(&name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The fixed hop-by-hop headers; `Connection` first.
pub(super) static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Did the client say it accepts trailers (`TE: trailers`)? Must be asked
/// before `strip_hop_by_hop`.
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().split(';').next() == Some("trailers"))
            })
            .unwrap_or(false)
    })
}

/// Is this an HTTP/1.1 upgrade request (WebSocket and friends)? Must be
/// asked before `strip_hop_by_hop`.
pub fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    let connection_names_upgrade = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    connection_names_upgrade.then(|| upgrade.clone())
}

/// The h2c upgrade's settings header (RFC 7540 §3.2), hop-by-hop even
/// when `Connection` does not name it.
pub static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Does an `Upgrade` value ask for h2c (HTTP/2 over cleartext)? Such an
/// upgrade is never forwarded: the backend's `101` would hand the client an
/// HTTP/2 connection to the backend that no longer passes through our
/// rules, limits or logs (h2c smuggling). The request itself is served as
/// plain HTTP/1.1, which RFC 9110 §7.8 allows (a server may ignore
/// `Upgrade`) and which every h2c client handles; RFC 9113 deprecated the
/// upgrade anyway. Clients that want HTTP/2 use TLS with ALPN or prior
/// knowledge, both served by farmgate itself.
pub fn is_h2c(upgrade: &HeaderValue) -> bool {
    upgrade
        .as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c"))
}

/// What the proxy knows about the client side of a request.
pub struct ClientSide<'a> {
    /// The client's IP, pre-rendered once per connection.
    pub ip: &'a HeaderValue,
    /// The peer is in `trusted_proxies`: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The verified client certificate, base64 DER, if the connection
    /// presented one (`listeners[].tls.client_auth`).
    pub cert: Option<&'a HeaderValue>,
}

/// Passes the client certificate on in `proxy.client_cert_header`, or
/// removes that header: a copy the client sent never reaches a backend.
pub fn apply_client_cert(headers: &mut HeaderMap, spec: &ProxySpec, cert: Option<&HeaderValue>) {
    match cert {
        Some(v) => {
            headers.insert(spec.client_cert_header.clone(), v.clone());
        }
        None => {
            headers.remove(&spec.client_cert_header);
        }
    }
}

/// Sets X-Forwarded-For, -Proto and -Host according to `proxy.forwarded_for`.
/// `host` is the Host the client asked for (or the :authority of HTTP/2).
pub fn apply_forwarded(
    headers: &mut HeaderMap,
    spec: &ProxySpec,
    client: &ClientSide<'_>,
    host: Option<&HeaderValue>,
) {
    if spec.forwarded_for == ForwardedFor::Off {
        return;
    }
    // One pass of name compares instead of hashed look-ups of names that
    // are usually absent.
    let (mut has_for, mut has_proto, mut has_host) = (false, false, false);
    for name in headers.keys() {
        has_for |= *name == X_FORWARDED_FOR;
        has_proto |= *name == X_FORWARDED_PROTO;
        has_host |= *name == X_FORWARDED_HOST;
    }
    if !client.trusted {
        if spec.forwarded_for == ForwardedFor::Replace && has_for {
            headers.remove(&X_FORWARDED_FOR);
            has_for = false;
        }
        if has_proto {
            headers.remove(&X_FORWARDED_PROTO);
            has_proto = false;
        }
        if has_host {
            headers.remove(&X_FORWARDED_HOST);
            has_host = false;
        }
    }
    if has_for {
        append_forwarded_for(headers, client.ip);
    } else {
        headers.insert(X_FORWARDED_FOR.clone(), client.ip.clone());
    }
    if !has_proto {
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(client.proto),
        );
    }
    if !has_host {
        if let Some(h) = host {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
    }
}

/// The request's trace context as forwarding sees it (`trace:` on).
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a> {
    pub ctx: TraceContext,
    /// `trace.response_header`: carries the trace id back to the client.
    pub response_header: Option<&'a HeaderName>,
}

/// Sets the hop's `traceparent` on a request to the backend (hyper's
/// path; the fast path writes the same `TraceContext::traceparent` bytes
/// into its head buffer).
pub fn apply_trace(headers: &mut HeaderMap, ctx: &TraceContext) {
    if let Ok(v) = HeaderValue::from_bytes(&ctx.traceparent()) {
        headers.insert(crate::trace::TRACEPARENT.clone(), v);
    }
}

/// Sets `trace.response_header` (the trace id) on an answer to the client.
pub fn set_trace_response(headers: &mut HeaderMap, trace: Option<&Trace<'_>>) {
    if let Some((name, id)) = trace.and_then(trace_response) {
        if let Ok(v) = HeaderValue::from_bytes(&id) {
            headers.insert(name.clone(), v);
        }
    }
}

/// The `trace.response_header` field: its name and the trace id in hex.
pub fn trace_response<'a>(trace: &Trace<'a>) -> Option<(&'a HeaderName, [u8; 32])> {
    Some((trace.response_header?, trace.ctx.trace_id_hex()))
}

/// The fields the fast path adds to a backend's answer head: the affinity
/// cookie and the trace id (`trace_response`).
pub fn answer_fields<'a>(
    cookie: Option<&'a HeaderValue>,
    trace: Option<&'a (&'a HeaderName, [u8; 32])>,
) -> smallvec::SmallVec<[(&'a [u8], &'a [u8]); 2]> {
    let mut out = smallvec::SmallVec::new();
    if let Some(c) = cookie {
        out.push((&b"Set-Cookie"[..], c.as_bytes()));
    }
    if let Some((name, id)) = trace {
        out.push((name.as_str().as_bytes(), &id[..]));
    }
    out
}

/// Appends `ip` to X-Forwarded-For, folding several incoming fields into one.
fn append_forwarded_for(headers: &mut HeaderMap, ip: &HeaderValue) {
    let mut existing = headers.get_all(&X_FORWARDED_FOR).iter();
    let Some(first) = existing.next() else {
        headers.insert(X_FORWARDED_FOR.clone(), ip.clone());
        return;
    };
    let mut joined = Vec::with_capacity(first.len() + ip.len() + 16);
    joined.extend_from_slice(first.as_bytes());
    for v in existing {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(ip.as_bytes());
    match HeaderValue::from_bytes(&joined) {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        Err(_) => {
            headers.insert(X_FORWARDED_FOR.clone(), ip.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: ForwardedFor) -> ProxySpec {
        ProxySpec::for_tests(mode, true)
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        m
    }

    #[test]
    fn strips_connection_named_and_fixed_headers() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("x-kept", "yes"),
        ]);
        assert!(wants_trailers(&h));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
        assert!(!wants_trailers(&h));
    }

    #[test]
    fn content_length_beside_transfer_encoding_is_dropped() {
        let mut h = map(&[("transfer-encoding", "chunked"), ("content-length", "3")]);
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
        let mut h = map(&[("content-length", "3")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h["content-length"], "3");
    }

    #[test]
    fn detects_upgrade() {
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_protocol(&h).expect("upgrade"), "websocket");
        assert!(upgrade_protocol(&map(&[("upgrade", "websocket")])).is_none());
    }

    #[test]
    fn append_and_replace() {
        let ip = HeaderValue::from_static("10.1.1.1");
        let client = ClientSide {
            cert: None,
            ip: &ip,
            trusted: false,
            proto: "http",
        };
        let host = HeaderValue::from_static("example.com");
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
        ]);
        apply_forwarded(&mut h, &spec(ForwardedFor::Append), &client, Some(&host));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.1.1.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");

        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        apply_forwarded(&mut h, &spec(ForwardedFor::Replace), &client, Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.1.1.1");
        assert_eq!(h["x-forwarded-proto"], "http");

        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        apply_forwarded(&mut h, &spec(ForwardedFor::Off), &client, Some(&host));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert!(!h.contains_key("x-forwarded-proto"));
    }

    #[test]
    fn trusted_peer_keeps_its_forwarded_headers() {
        let ip = HeaderValue::from_static("10.0.0.2");
        let client = ClientSide {
            cert: None,
            ip: &ip,
            trusted: true,
            proto: "http",
        };
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        apply_forwarded(&mut h, &spec(ForwardedFor::Replace), &client, None);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
