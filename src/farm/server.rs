//! A server of a farm as the runtime snapshot sees it: where it is, its
//! weight, and a handle to its long-lived state.

use super::state::ServerState;
use http::uri::{Authority, Scheme};
use std::sync::Arc;

/// One backend server, compiled from config.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: Arc<str>,
    /// The address as written in the config (for status and logs).
    pub address: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    pub weight: u32,
    /// `Host` sent when `preserve_host: false`.
    pub host_header: http::HeaderValue,
    pub state: Arc<ServerState>,
}

/// Parses `host:port`, `http://host:port` or `https://host:port`.
pub fn parse_address(text: &str) -> Result<(Scheme, Authority), String> {
    let (scheme, rest) = if let Some(r) = text.strip_prefix("http://") {
        (Scheme::HTTP, r)
    } else if let Some(r) = text.strip_prefix("https://") {
        (Scheme::HTTPS, r)
    } else if text.contains("://") {
        return Err(format!(
            "address {text:?} has an unsupported scheme; use host:port, http:// or https://"
        ));
    } else {
        (Scheme::HTTP, text)
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(format!(
            "address {text:?} must not contain a path; give host:port only"
        ));
    }
    let authority: Authority = rest
        .parse()
        .map_err(|_| format!("address {text:?} is not a valid host:port"))?;
    if authority.host().is_empty() {
        return Err(format!("address {text:?} has no host"));
    }
    if authority.port_u16().is_none() {
        return Err(format!(
            "address {text:?} needs a port (e.g. \"{}:80\")",
            authority.host()
        ));
    }
    Ok((scheme, authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let (s, a) = parse_address("127.0.0.1:9001").expect("plain");
        assert_eq!(s, Scheme::HTTP);
        assert_eq!(a.as_str(), "127.0.0.1:9001");
        let (s, a) = parse_address("https://app.internal:8443").expect("https");
        assert_eq!(s, Scheme::HTTPS);
        assert_eq!(a.port_u16(), Some(8443));
        assert!(parse_address("127.0.0.1").is_err());
        assert!(parse_address("ftp://x:1").is_err());
        assert!(parse_address("x:1/path").is_err());
        assert!(parse_address("not an address").is_err());
    }
}
