//! Which header fields the proxy itself handles: hop-by-hop fields (RFC
//! 9110 §7.6.1) and the framing and forwarding fields, recognised by one
//! length switch and a case-insensitive compare; and the fields a
//! `Connection` value names.

use super::tokens;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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

pub(super) fn kind(name: &[u8]) -> Kind {
    let candidates: &[(&[u8], Kind)] = match name.len() {
        2 => &[(b"te", Kind::Te)],
        4 => &[(b"host", Kind::Host), (b"date", Kind::Date)],
        6 => &[(b"expect", Kind::Expect)],
        7 => &[(b"upgrade", Kind::Upgrade)],
        10 => &[
            (b"connection", Kind::Connection),
            (b"keep-alive", Kind::KeepAlive),
        ],
        14 => &[(b"content-length", Kind::ContentLength)],
        15 => &[(b"x-forwarded-for", Kind::XForwardedFor)],
        16 => &[
            (b"proxy-connection", Kind::ProxyConnection),
            (b"x-forwarded-host", Kind::XForwardedHost),
        ],
        17 => &[
            (b"transfer-encoding", Kind::TransferEncoding),
            (b"x-forwarded-proto", Kind::XForwardedProto),
        ],
        _ => return Kind::Other,
    };
    candidates
        .iter()
        .find(|(n, _)| is_lower(name, n))
        .map_or(Kind::Other, |&(_, k)| k)
}

/// Is the token `name` the lowercase `lower` (letters and `-` only, the
/// same length) but for case? Eight bytes at a time: every byte of `lower`
/// has the 0x20 bit, and a token byte with it set is `lower`'s byte only
/// when it is that byte or its capital.
fn is_lower(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    name.len() == lower.len()
        && name
            .chunks(8)
            .zip(lower.chunks(8))
            .all(|(a, b)| word(a) | (CASE >> (8 * (8 - a.len()))) == word(b))
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
