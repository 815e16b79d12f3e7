//! Which header fields the proxy itself handles: hop-by-hop fields (RFC
//! 9110 §7.6.1) and the framing and forwarding fields, recognised by one
//! length switch and a case-insensitive compare; and the fields a
//! `Connection` value names.

use super::tokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    TransferEncoding,
    Upgrade,
    Host,
    ContentLength,
    Date,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Expect,
    Other,
}

impl Kind {
    /// Never forwarded as received (RFC 9110 §7.6.1; Content-Length is
    /// rewritten from the parsed framing instead).
    pub(super) fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Kind::Connection
                | Kind::KeepAlive
                | Kind::ProxyConnection
                | Kind::Te
                | Kind::TransferEncoding
                | Kind::Upgrade
                | Kind::ContentLength
        )
    }
}

pub fn kind(name: &[u8]) -> Kind {
    // One length switch, then one compare (a table of candidates per
    // length was built on the stack at every call).
    let is = |lower: &[u8]| is_lower(name, lower);
    match name.len() {
        2 if is(b"te") => Kind::Te,
        4 if is(b"host") => Kind::Host,
        4 if is(b"date") => Kind::Date,
        6 if is(b"expect") => Kind::Expect,
        7 if is(b"upgrade") => Kind::Upgrade,
        10 if is(b"connection") => Kind::Connection,
        10 if is(b"keep-alive") => Kind::KeepAlive,
        14 if is(b"content-length") => Kind::ContentLength,
        15 if is(b"x-forwarded-for") => Kind::XForwardedFor,
        16 if is(b"proxy-connection") => Kind::ProxyConnection,
        16 if is(b"x-forwarded-host") => Kind::XForwardedHost,
        17 if is(b"transfer-encoding") => Kind::TransferEncoding,
        17 if is(b"x-forwarded-proto") => Kind::XForwardedProto,
        _ => Kind::Other,
    }
}

/// Is the token `name` the lowercase `lower` (letters and `-` only) but
/// for case? Eight bytes at a time: every byte of `lower` has the 0x20
/// bit, and a token byte with it set is `lower`'s byte only when it is
/// that byte or its capital.
#[inline]
fn is_lower(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let (mut a, mut b) = (name.chunks_exact(8), lower.chunks_exact(8));
    for (x, y) in (&mut a).zip(&mut b) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            return false;
        };
        if u64::from_le_bytes(x) | CASE != u64::from_le_bytes(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(&x, &y)| x | 0x20 == y)
}

/// The `Connection` values of one head, to ask which fields they name.
/// Holds up to four values without allocating; a head with more falls
/// back to reading its fields again.
pub(super) struct ConnectionNames<'a> {
    values: [&'a [u8]; 4],
    n: usize,
    /// Some token names a field (other than `close`, `keep-alive` and
    /// `upgrade`, whose fields are hop-by-hop anyway).
    names_fields: bool,
    upgrade: bool,
}

impl<'a> ConnectionNames<'a> {
    pub(super) fn new() -> Self {
        ConnectionNames {
            values: [&[]; 4],
            n: 0,
            names_fields: false,
            upgrade: false,
        }
    }

    pub(super) fn add(&mut self, value: &'a [u8]) {
        if self.n < self.values.len() {
            self.values[self.n] = value;
        }
        self.n += 1;
        // The usual values, without splitting them into tokens.
        if value.eq_ignore_ascii_case(b"keep-alive") || value.eq_ignore_ascii_case(b"close") {
            return;
        }
        for t in tokens(value) {
            if t.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive") {
                self.names_fields = true;
            }
        }
    }

    pub(super) fn upgrade(&self) -> bool {
        self.upgrade
    }

    /// Is `name` listed in a Connection value? `fields` reads the head's
    /// fields again when it had more values than are held.
    pub(super) fn names<I>(&self, name: &[u8], fields: impl FnOnce() -> I) -> bool
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])>,
    {
        if !self.names_fields {
            return false;
        }
        let listed = |v: &[u8]| tokens(v).any(|t| t.eq_ignore_ascii_case(name));
        if self.n <= self.values.len() {
            return self.values[..self.n].iter().any(|v| listed(v));
        }
        fields()
            .filter(|(n, _)| kind(n) == Kind::Connection)
            .any(|(_, v)| listed(v))
    }
}

/// Appends `name: value` CRLF.
pub(super) fn put(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Is `name` among the names of `set` (case-insensitive)?
pub(super) fn in_set<N: AsRef<[u8]>, V>(set: &[(N, V)], name: &[u8]) -> bool {
    set.iter()
        .any(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_ignore_case_and_nothing_else() {
        let names: &[(&str, Kind)] = &[
            ("te", Kind::Te),
            ("host", Kind::Host),
            ("date", Kind::Date),
            ("expect", Kind::Expect),
            ("upgrade", Kind::Upgrade),
            ("connection", Kind::Connection),
            ("keep-alive", Kind::KeepAlive),
            ("content-length", Kind::ContentLength),
            ("x-forwarded-for", Kind::XForwardedFor),
            ("proxy-connection", Kind::ProxyConnection),
            ("x-forwarded-host", Kind::XForwardedHost),
            ("transfer-encoding", Kind::TransferEncoding),
            ("x-forwarded-proto", Kind::XForwardedProto),
        ];
        // Every token byte at every place of every name: a kind only for
        // the name itself in any case.
        let tchars: Vec<u8> = (0..=255u8)
            .filter(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            .collect();
        for &(name, k) in names {
            assert_eq!(kind(name.as_bytes()), k);
            assert_eq!(kind(name.to_ascii_uppercase().as_bytes()), k);
            for at in 0..name.len() {
                for &b in &tchars {
                    let mut v = name.as_bytes().to_vec();
                    v[at] = b;
                    let want = if v.eq_ignore_ascii_case(name.as_bytes()) {
                        k
                    } else {
                        kind_slow(&v)
                    };
                    assert_eq!(kind(&v), want, "{:?}", String::from_utf8_lossy(&v));
                }
            }
        }
        assert_eq!(kind(b"content-type"), Kind::Other);
        assert_eq!(kind(b""), Kind::Other);
    }

    /// The plain comparison `kind` stands for.
    fn kind_slow(name: &[u8]) -> Kind {
        for k in [
            "te",
            "host",
            "date",
            "expect",
            "upgrade",
            "connection",
            "keep-alive",
            "content-length",
            "x-forwarded-for",
            "proxy-connection",
            "x-forwarded-host",
            "transfer-encoding",
            "x-forwarded-proto",
        ] {
            if name.eq_ignore_ascii_case(k.as_bytes()) {
                return kind(k.as_bytes());
            }
        }
        Kind::Other
    }
}
