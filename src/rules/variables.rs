//! IIS server variables: the request facts a rule can test and splice into
//! its output (`{HTTP_HOST}`, `{HTTPS}`, `{QUERY_STRING}`, ...). Names are
//! resolved when the config is built; a header variable carries its header
//! name ready for lookup, so a request only does a map lookup.

use http::header::{HeaderMap, HeaderName, HOST};
use http::{Method, Uri, Version};

/// What rules can see of a request. Built once per request from borrowed
/// parts; nothing here allocates.
#[derive(Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    /// The TCP peer's IP as text (`REMOTE_ADDR`).
    pub remote_addr: &'a [u8],
    /// Was the connection TLS (`HTTPS` on/off)?
    pub https: bool,
    /// The client's address, for rules' `access` lists (none: refused by
    /// an allow list, passed by a deny list).
    pub client: Option<std::net::IpAddr>,
    port: [u8; 5],
    port_len: u8,
}

impl<'a> RequestView<'a> {
    pub fn new(
        method: &'a Method,
        uri: &'a Uri,
        version: Version,
        headers: &'a HeaderMap,
        remote_addr: &'a [u8],
        server_port: u16,
        https: bool,
    ) -> Self {
        // SERVER_PORT rendered on the stack: no formatting machinery.
        let mut port = [0u8; 5];
        let mut digits = [0u8; 5];
        let mut n = server_port;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for i in 0..len {
            port[i] = digits[len - 1 - i];
        }
        RequestView {
            method,
            uri,
            version,
            headers,
            remote_addr,
            https,
            client: None,
            port,
            port_len: len as u8,
        }
    }

    /// The client's address, for `access` lists.
    pub fn with_client(mut self, ip: std::net::IpAddr) -> Self {
        self.client = Some(ip);
        self
    }

    /// The Host header, or the authority of an HTTP/2 request.
    pub fn host(&self) -> &'a [u8] {
        match self.headers.get(HOST) {
            Some(h) => h.as_bytes(),
            None => self.uri.authority().map_or(b"", |a| a.as_str().as_bytes()),
        }
    }

    pub fn query(&self) -> &'a str {
        self.uri.query().unwrap_or("")
    }
}

/// A server variable, resolved at config load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// `HTTP_HOST`: the Host header (or HTTP/2 authority).
    HttpHost,
    /// `HTTPS`: `on` or `off`.
    Https,
    /// `QUERY_STRING`: the query without `?`, as sent.
    QueryString,
    /// `REQUEST_URI`: the original path and query, as sent.
    RequestUri,
    /// `REQUEST_METHOD`: `GET`, `POST`, ...
    RequestMethod,
    /// `REMOTE_ADDR`: the client's IP (the TCP peer).
    RemoteAddr,
    /// `SERVER_PORT`: the local port the request came in on.
    ServerPort,
    /// `SERVER_PROTOCOL`: `HTTP/1.1`, `HTTP/2`, ...
    ServerProtocol,
    /// `URL`: the normalised path being matched (after earlier rewrites).
    Url,
    /// `HTTP_<NAME>`: the first value of request header `<name>` (`_` is `-`).
    Header(HeaderName),
}

/// The names accepted, for messages.
pub const KNOWN: &str = "HTTP_HOST, HTTPS, QUERY_STRING, REQUEST_URI, REQUEST_METHOD, \
     REMOTE_ADDR, SERVER_PORT, SERVER_PROTOCOL, URL or HTTP_<HEADER_NAME>";

impl Variable {
    /// Resolves a variable name (case-insensitive, as in IIS).
    pub fn parse(name: &str) -> Result<Variable, String> {
        let upper = name.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "HTTP_HOST" => Variable::HttpHost,
            "HTTPS" => Variable::Https,
            "QUERY_STRING" => Variable::QueryString,
            "REQUEST_URI" => Variable::RequestUri,
            "REQUEST_METHOD" => Variable::RequestMethod,
            "REMOTE_ADDR" => Variable::RemoteAddr,
            "SERVER_PORT" => Variable::ServerPort,
            "SERVER_PROTOCOL" => Variable::ServerProtocol,
            "URL" => Variable::Url,
            _ => match upper.strip_prefix("HTTP_") {
                Some(h) if !h.is_empty() => {
                    let header = h.to_ascii_lowercase().replace('_', "-");
                    Variable::Header(
                        HeaderName::from_bytes(header.as_bytes())
                            .map_err(|_| format!("{{{name}}} does not name a valid header"))?,
                    )
                }
                _ => {
                    return Err(format!(
                        "unknown server variable {{{name}}}; expected {KNOWN}"
                    ))
                }
            },
        })
    }

    /// The variable's value for this request; `url` is the path being
    /// matched. Absent values are empty.
    #[inline]
    pub fn value<'a>(&'a self, req: &'a RequestView<'a>, url: &'a str) -> &'a [u8] {
        match self {
            Variable::HttpHost => req.host(),
            Variable::Https => {
                if req.https {
                    b"on"
                } else {
                    b"off"
                }
            }
            Variable::QueryString => req.query().as_bytes(),
            Variable::RequestUri => req
                .uri
                .path_and_query()
                .map_or(b"/", |pq| pq.as_str().as_bytes()),
            Variable::RequestMethod => req.method.as_str().as_bytes(),
            Variable::RemoteAddr => req.remote_addr,
            Variable::ServerPort => &req.port[..req.port_len as usize],
            Variable::ServerProtocol => match req.version {
                Version::HTTP_09 => b"HTTP/0.9",
                Version::HTTP_10 => b"HTTP/1.0",
                Version::HTTP_2 => b"HTTP/2",
                Version::HTTP_3 => b"HTTP/3",
                _ => b"HTTP/1.1",
            },
            Variable::Url => url.as_bytes(),
            Variable::Header(name) => req.headers.get(name).map_or(b"", |v| v.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_case_insensitively_and_headers_are_precomputed() {
        assert_eq!(Variable::parse("http_host"), Ok(Variable::HttpHost));
        assert_eq!(
            Variable::parse("HTTP_X_ANY_HEADER"),
            Ok(Variable::Header(HeaderName::from_static("x-any-header")))
        );
        assert!(Variable::parse("SERVER_NAMEX")
            .unwrap_err()
            .contains("unknown server variable {SERVER_NAMEX}"));
        assert!(Variable::parse("HTTP_").is_err());
    }

    #[test]
    fn port_renders_without_formatting() {
        let (m, u, h) = (Method::GET, Uri::from_static("/"), HeaderMap::new());
        for port in [0u16, 7, 80, 443, 8080, 65535] {
            let v = RequestView::new(&m, &u, Version::HTTP_11, &h, b"", port, false);
            assert_eq!(
                Variable::ServerPort.value(&v, "/"),
                port.to_string().as_bytes()
            );
        }
    }
}
