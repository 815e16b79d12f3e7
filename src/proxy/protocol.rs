//! `farms[].protocol`: which HTTP version a farm's servers are spoken to.
//! `http1` (the default) is HTTP/1.1 on every server; `http2` is HTTP/2 by
//! prior knowledge on `http://` servers (h2c) and by ALPN on `https://`
//! ones; `auto` offers both by ALPN on `https://` servers and keeps
//! HTTP/1.1 on `http://` ones (h2c cannot be discovered without a round
//! trip that HTTP/1.1 servers answer badly).

use http::uri::Scheme;

/// `farms[].protocol` as written.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RawProtocol {
    /// HTTP/1.1 to every server.
    #[default]
    Http1,
    /// HTTP/2 to every server: h2c (prior knowledge) on `http://`, ALPN
    /// `h2` on `https://`. Needed by gRPC services.
    Http2,
    /// ALPN `h2, http/1.1` on `https://` servers, HTTP/1.1 on `http://`.
    Auto,
}

/// The farm's choice at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Http1,
    Http2,
    Auto,
}

impl From<RawProtocol> for Protocol {
    fn from(raw: RawProtocol) -> Self {
        match raw {
            RawProtocol::Http1 => Protocol::Http1,
            RawProtocol::Http2 => Protocol::Http2,
            RawProtocol::Auto => Protocol::Auto,
        }
    }
}

/// What a connection to one server offers in its TLS handshake (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` only (and nothing on plain TCP).
    Http1,
    /// `h2` only; on plain TCP, HTTP/2 by prior knowledge.
    H2,
    /// `h2, http/1.1`: the server picks.
    Both,
}

impl Protocol {
    /// How a request to a server with `scheme` goes out: `None` for the
    /// HTTP/1.1 path, else the HTTP/2 path with what to offer by ALPN.
    #[inline]
    pub fn h2_alpn(self, scheme: &Scheme) -> Option<Alpn> {
        match self {
            Protocol::Http1 => None,
            Protocol::Http2 => Some(Alpn::H2),
            Protocol::Auto if *scheme == Scheme::HTTPS => Some(Alpn::Both),
            Protocol::Auto => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Auto => "auto",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_path() {
        assert_eq!(Protocol::Http1.h2_alpn(&Scheme::HTTPS), None);
        assert_eq!(Protocol::Http2.h2_alpn(&Scheme::HTTP), Some(Alpn::H2));
        assert_eq!(Protocol::Http2.h2_alpn(&Scheme::HTTPS), Some(Alpn::H2));
        assert_eq!(Protocol::Auto.h2_alpn(&Scheme::HTTP), None);
        assert_eq!(Protocol::Auto.h2_alpn(&Scheme::HTTPS), Some(Alpn::Both));
    }
}
