//! What forwarding knows of gRPC (HTTP/2 with `content-type:
//! application/grpc*`, the status in trailers): telling a gRPC call, its
//! deadline (`grpc-timeout`), the status a response carries, and the
//! answer farmgate gives a gRPC client when it cannot forward the call: a
//! "trailers-only" response (HTTP 200, `grpc-status`, `grpc-message`), which
//! is what gRPC clients read, instead of an HTML/text 5xx they would only
//! guess at.

use super::body::ProxyBody;
use super::error::ProxyError;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Response;
use std::time::Duration;

pub static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// gRPC status codes farmgate itself answers with.
pub mod code {
    pub const OK: u8 = 0;
    pub const CANCELLED: u8 = 1;
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const RESOURCE_EXHAUSTED: u8 = 8;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const INTERNAL: u8 = 13;
    pub const UNAVAILABLE: u8 = 14;
}

/// Status codes 0-16 are defined; others are counted as this one.
pub const CODES: usize = 17;

/// `farms[].grpc_retry_on` as written: the statuses of a trailers-only
/// answer (the status and nothing else) that send the call to another
/// server. Names as Envoy's `retry-grpc-on`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRetryOn {
    /// 14: the server could not take the call. grpc-core servers answer
    /// this way calls that were queued, never run, when their shutdown's
    /// grace ends ("Cancelling all calls").
    Unavailable,
    /// 8: the server is out of a resource (often a concurrency limit).
    ResourceExhausted,
    /// 4: the server's own deadline ran out.
    DeadlineExceeded,
    /// 13: an internal error of the server.
    Internal,
}

/// The statuses that send a call to another server, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn(u32);

impl RetryOn {
    pub fn new(raw: &[RawRetryOn]) -> Self {
        RetryOn(raw.iter().fold(0, |set, r| {
            set | 1
                << match r {
                    RawRetryOn::Unavailable => code::UNAVAILABLE,
                    RawRetryOn::ResourceExhausted => code::RESOURCE_EXHAUSTED,
                    RawRetryOn::DeadlineExceeded => code::DEADLINE_EXCEEDED,
                    RawRetryOn::Internal => code::INTERNAL,
                }
        }))
    }

    #[inline]
    pub fn contains(self, code: u8) -> bool {
        code < 32 && self.0 & (1 << code) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Is this request (or response) gRPC?
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The call's deadline from `grpc-timeout` (1-8 digits and a unit: H, M,
/// S, m, u, n). A malformed value is ignored, as gRPC servers do.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(&GRPC_TIMEOUT)?.as_bytes();
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-status` of a response head (trailers-only) or trailers.
#[inline]
pub fn status(headers: &HeaderMap) -> Option<u8> {
    let v = headers.get(&GRPC_STATUS)?.as_bytes();
    if v.is_empty() || v.len() > 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The gRPC status a farmgate error becomes.
pub fn code_of(e: ProxyError) -> u8 {
    match e {
        ProxyError::NoRoute => code::UNIMPLEMENTED,
        ProxyError::NoServer | ProxyError::Connect | ProxyError::Backend => code::UNAVAILABLE,
        ProxyError::Timeout => code::DEADLINE_EXCEEDED,
        ProxyError::BodyTooLarge => code::RESOURCE_EXHAUSTED,
        ProxyError::BadRequest => code::INTERNAL,
        ProxyError::Forbidden => code::PERMISSION_DENIED,
    }
}

/// The trailers-only answer to a gRPC call farmgate could not forward.
pub fn error_response(e: ProxyError) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(
        GRPC_STATUS.clone(),
        HeaderValue::from(u16::from(code_of(e))),
    );
    // The message is the error's text: plain ASCII without '%', so it
    // needs no percent-encoding.
    h.insert(GRPC_MESSAGE.clone(), HeaderValue::from_static(message(e)));
    resp
}

fn message(e: ProxyError) -> &'static str {
    match e {
        ProxyError::NoRoute => "farmgate: no farm serves this call",
        ProxyError::NoServer => "farmgate: no server of the farm is available",
        ProxyError::Connect => "farmgate: could not connect to a server",
        ProxyError::Timeout => "farmgate: no response within the deadline",
        ProxyError::Backend => "farmgate: the server failed before answering",
        ProxyError::BodyTooLarge => "farmgate: the request is larger than max_request_body",
        ProxyError::BadRequest => "farmgate: malformed request",
        ProxyError::Forbidden => "farmgate: refused by an access list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, v: &'static str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_static(v));
        m
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(&h("content-type", "application/grpc")));
        assert!(is_grpc(&h("content-type", "application/grpc+proto")));
        assert!(!is_grpc(&h("content-type", "application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn timeouts() {
        let t = |v| timeout(&h("grpc-timeout", v));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("5M"), Some(Duration::from_secs(300)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(t("123456789S"), None);
        assert_eq!(t("S"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn statuses() {
        assert_eq!(status(&h("grpc-status", "0")), Some(0));
        assert_eq!(status(&h("grpc-status", "14")), Some(14));
        assert_eq!(status(&h("grpc-status", "x")), None);
        assert_eq!(status(&HeaderMap::new()), None);
    }

    #[test]
    fn errors_become_trailers_only_responses() {
        let r = error_response(ProxyError::NoServer);
        assert_eq!(r.status(), 200);
        assert_eq!(status(r.headers()), Some(code::UNAVAILABLE));
        assert!(is_grpc(r.headers()));
        let r = error_response(ProxyError::Timeout);
        assert_eq!(status(r.headers()), Some(code::DEADLINE_EXCEEDED));
        assert_eq!(code_of(ProxyError::BodyTooLarge), code::RESOURCE_EXHAUSTED);
    }
}
