//! The request head sent to a backend, written into one buffer straight
//! from the client's parsed head: hop-by-hop fields and those `Connection`
//! names dropped, framing written from the parsed body length, the
//! X-Forwarded-* family per the proxy's mode and trusted peers (the rules
//! of `proxy::headers`), `TE: trailers` and an upgrade carried on, the
//! rules' header overrides applied last. The client's field names and
//! values are copied as they came, in their order.

use super::fields::{in_set, kind, put, ConnectionNames, Kind};
use super::{tokens, BodyKind, RequestHead};

/// What to do with X-Forwarded-For (`proxy.forwarded_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedMode {
    /// Append the client's address to what came.
    Append,
    /// Send only the client's address (unless the peer is trusted).
    Replace,
    /// Leave X-Forwarded-* alone.
    Off,
}

/// What the proxy adds to a forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    pub mode: ForwardedMode,
    /// The peer is a trusted proxy: its X-Forwarded-* are kept.
    pub trusted: bool,
    /// The client's address as text.
    pub client_ip: &'a [u8],
    /// `http` or `https`.
    pub proto: &'a [u8],
    /// Host sent instead of the client's (`preserve_host: false`).
    pub host: Option<&'a [u8]>,
    /// Path and query sent instead of the client's (a rule's rewrite).
    pub target: Option<&'a [u8]>,
}

/// What the written head carries on from the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// An upgrade (WebSocket...): `Connection: upgrade` and `Upgrade` sent.
    pub upgrade: bool,
    /// The client accepts trailers: `TE: trailers` sent.
    pub trailers: bool,
}

/// Writes the backend's request head for `head` into `out` (appended).
/// `set`: the rules' header overrides, applied last (an empty value
/// removes the field). The body is re-framed by `head.body()`: a
/// Content-Length as parsed, or chunked.
pub fn write_request<N, V>(
    head: &RequestHead<'_>,
    fwd: &Forwarding<'_>,
    set: &[(N, V)],
    out: &mut Vec<u8>,
) -> Sent
where
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut conn = ConnectionNames::new();
    let (mut upgrade_value, mut client_host, mut trailers) = (None, None, false);
    let (mut kept_for, mut kept_proto, mut kept_host) = (false, false, false);
    for (name, value) in head.fields() {
        match kind(name) {
            Kind::Connection => conn.add(value),
            Kind::Te => {
                trailers |= tokens(value).any(|t| {
                    let coding = t.split(|&b| b == b';').next().unwrap_or_default();
                    super::scan::trim_ows(coding).eq_ignore_ascii_case(b"trailers")
                })
            }
            Kind::Upgrade => upgrade_value = upgrade_value.or(Some(value)),
            Kind::Host => client_host = client_host.or(Some(value)),
            _ => {}
        }
    }
    let (target, authority) = origin_form(head.target());
    let host_of_target = authority.filter(|a| !a.is_empty());
    let client_host = client_host.or(host_of_target);
    let keep = |k: Kind, name: &[u8]| -> bool {
        if in_set(set, name) {
            return false;
        }
        let forwarded = match k {
            _ if k.hop_by_hop() => return false,
            Kind::Host => return fwd.host.is_none(),
            Kind::XForwardedFor => {
                fwd.mode == ForwardedMode::Off || fwd.trusted || fwd.mode == ForwardedMode::Append
            }
            Kind::XForwardedProto | Kind::XForwardedHost => {
                fwd.mode == ForwardedMode::Off || fwd.trusted
            }
            _ => true,
        };
        forwarded && !conn.names(name, || head.fields())
    };

    out.extend_from_slice(head.method());
    out.push(b' ');
    match fwd.target {
        Some(t) => out.extend_from_slice(t),
        None => {
            if !target.starts_with(b"/") && authority.is_some() {
                out.push(b'/');
            }
            out.extend_from_slice(target);
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = fwd.host.or(client_host);
    let host_written_here =
        fwd.host.is_some() || (host_of_target.is_some() && !has(head, Kind::Host));
    if let Some(h) = host.filter(|_| host_written_here && !in_set(set, b"host")) {
        put(out, b"Host", h);
    }
    for (name, value) in head.fields() {
        let k = kind(name);
        if !keep(k, name) {
            continue;
        }
        match k {
            // Forwarded-For values are gathered into one field below.
            Kind::XForwardedFor if fwd.mode != ForwardedMode::Off => {
                kept_for = true;
                continue;
            }
            Kind::XForwardedProto => kept_proto = true,
            Kind::XForwardedHost => kept_host = true,
            _ => {}
        }
        put(out, name, value);
    }
    if fwd.mode != ForwardedMode::Off {
        if !in_set(set, b"x-forwarded-for") {
            out.extend_from_slice(b"X-Forwarded-For: ");
            if kept_for {
                for (name, value) in head.fields() {
                    if kind(name) == Kind::XForwardedFor && keep(Kind::XForwardedFor, name) {
                        out.extend_from_slice(value);
                        out.extend_from_slice(b", ");
                    }
                }
            }
            out.extend_from_slice(fwd.client_ip);
            out.extend_from_slice(b"\r\n");
        }
        if !kept_proto && !in_set(set, b"x-forwarded-proto") {
            put(out, b"X-Forwarded-Proto", fwd.proto);
        }
        if let Some(h) = client_host.filter(|_| !kept_host && !in_set(set, b"x-forwarded-host")) {
            put(out, b"X-Forwarded-Host", h);
        }
    }
    let mut sent = Sent::default();
    if trailers && !in_set(set, b"te") {
        put(out, b"TE", b"trailers");
        sent.trailers = true;
    }
    if let Some(proto) = upgrade_value.filter(|_| conn.upgrade() && head.minor() == 1) {
        out.extend_from_slice(b"Connection: upgrade\r\n");
        put(out, b"Upgrade", proto);
        sent.upgrade = true;
    }
    match head.body() {
        BodyKind::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {
            if let Some(n) = head.content_length() {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    for (name, value) in set {
        let value = value.as_ref();
        if !value.is_empty() {
            put(out, name.as_ref(), value);
        }
    }
    out.extend_from_slice(b"\r\n");
    sent
}

fn has(head: &RequestHead<'_>, k: Kind) -> bool {
    head.fields().any(|(n, _)| kind(n) == k)
}

/// The origin form of a request target (`/path?query`, without its
/// leading `/` when the absolute form had none: `http://h?q` gives `?q`)
/// and, for an absolute-form target (`http://host/path`), its authority
/// (possibly empty: `http://user@`).
fn origin_form(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let rest = if starts_with_ignore_case(target, b"http://") {
        &target[7..]
    } else if starts_with_ignore_case(target, b"https://") {
        &target[8..]
    } else {
        return (target, None);
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    // The userinfo of an absolute URI is never sent on (RFC 9110 §4.2.4).
    let authority = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let path = match rest[end..].first() {
        Some(b'/' | b'?') => &rest[end..],
        _ => b"".as_slice(),
    };
    (path, Some(authority))
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Appends `n` in decimal without allocating.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
