//! Which responses may be compressed, and the head of one that is: the
//! "never" cases, `Vary: Accept-Encoding` merged into the response's own,
//! the strong `ETag` made weak, `Content-Length` and `Accept-Ranges`
//! dropped.
//!
//! ETag: made weak (`"x"` becomes `W/"x"`), as nginx does, rather than
//! suffixed per encoding. Every encoding of a body is the same
//! representation data, so one weak tag is true for all of them, and the
//! validator keeps working end to end: If-None-Match compares weakly, so
//! a client's `W/"x"` still matches the backend's and the cache's `"x"`
//! (a 304 without a body fetch). A suffix would be a tag the backend
//! never issued, and every revalidation through it would miss.

use super::config::CompressSpec;
use super::negotiate::Algorithm;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

/// What a response allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never compressed, and it does not vary by encoding.
    Never,
    /// May be compressed; the body length when the head gives it.
    May(Option<u64>),
}

/// Can `resp` be compressed under `spec`?
pub fn verdict<B>(spec: &CompressSpec, resp: &Response<B>) -> Verdict {
    let status = resp.status();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
    {
        return Verdict::Never;
    }
    let h = resp.headers();
    if h.contains_key(header::CONTENT_RANGE)
        || h.get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        || has_token(h, &header::CACHE_CONTROL, b"no-transform")
        // An upgraded connection carries another protocol, not this body.
        || h.contains_key(header::UPGRADE)
    {
        return Verdict::Never;
    }
    let Some(ct) = h.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) else {
        return Verdict::Never;
    };
    // Server-sent events must reach the client event by event.
    if starts_with_ignore_case(ct, b"text/event-stream") || !spec.types.matches(ct) {
        return Verdict::Never;
    }
    let len = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) if n < spec.min_size.max(1) => Verdict::Never,
        _ => Verdict::May(len),
    }
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Does a comma-separated header list hold `token` (parameters aside)?
fn has_token(h: &HeaderMap, name: &header::HeaderName, token: &[u8]) -> bool {
    h.get_all(name).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|item| {
            let item = item.split(|&b| b == b'=').next().unwrap_or_default();
            item.trim_ascii().eq_ignore_ascii_case(token)
        })
    })
}

/// Adds `Accept-Encoding` to `Vary`: a new field when there is none,
/// else merged into one value with what the backend listed (unless it is
/// there already, or `*` varies on everything).
pub fn add_vary(h: &mut HeaderMap) {
    if !h.contains_key(header::VARY) {
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        return;
    }
    if has_token(h, &header::VARY, b"accept-encoding") || has_token(h, &header::VARY, b"*") {
        return;
    }
    let mut merged = Vec::new();
    for v in h.get_all(header::VARY) {
        let v = v.as_bytes().trim_ascii();
        if !v.is_empty() {
            merged.extend_from_slice(v);
            merged.extend_from_slice(b", ");
        }
    }
    merged.extend_from_slice(b"Accept-Encoding");
    if let Ok(v) = HeaderValue::from_bytes(&merged) {
        h.insert(header::VARY, v);
    }
}

/// The head of a response sent encoded with `a` (Vary already added).
pub fn encoded_head(h: &mut HeaderMap, a: Algorithm, len: Option<usize>) {
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(a.token()),
    );
    match len {
        Some(n) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        None => {
            h.remove(header::CONTENT_LENGTH);
        }
    }
    // Ranges of the identity body mean nothing in the encoded one.
    h.remove(header::ACCEPT_RANGES);
    if let Some(tag) = h.get(header::ETAG) {
        if !tag.as_bytes().starts_with(b"W/") {
            let mut weak = Vec::with_capacity(tag.len() + 2);
            weak.extend_from_slice(b"W/");
            weak.extend_from_slice(tag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                h.insert(header::ETAG, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("valid response")
    }

    #[test]
    fn never_cases() {
        let s = CompressSpec::default();
        let html = ("content-type", "text/html");
        let never = |r: Response<()>| assert_eq!(verdict(&s, &r), Verdict::Never, "{r:?}");
        never(resp(204, &[html]));
        never(resp(304, &[html]));
        never(resp(101, &[html]));
        never(resp(206, &[html]));
        never(resp(200, &[html, ("content-range", "bytes 0-1/2")]));
        never(resp(200, &[html, ("content-encoding", "gzip")]));
        never(resp(
            200,
            &[html, ("cache-control", "public, No-Transform")],
        ));
        never(resp(200, &[html, ("content-length", "1023")]));
        never(resp(200, &[("content-type", "image/png")]));
        never(resp(200, &[]));
        never(resp(
            200,
            &[("content-type", "text/event-stream; charset=utf-8")],
        ));
        assert_eq!(
            verdict(&s, &resp(200, &[html, ("content-length", "1024")])),
            Verdict::May(Some(1024))
        );
        assert_eq!(verdict(&s, &resp(404, &[html])), Verdict::May(None));
        assert_eq!(
            verdict(&s, &resp(200, &[html, ("content-encoding", "identity")])),
            Verdict::May(None)
        );
    }

    #[test]
    fn vary_is_added_or_merged_once() {
        let mut h = HeaderMap::new();
        add_vary(&mut h);
        assert_eq!(h[header::VARY], "Accept-Encoding");
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);

        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("Cookie"));
        h.append(header::VARY, HeaderValue::from_static("Accept-Language"));
        add_vary(&mut h);
        assert_eq!(h[header::VARY], "Cookie, Accept-Language, Accept-Encoding");

        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("*"));
        add_vary(&mut h);
        assert_eq!(h[header::VARY], "*");
    }

    #[test]
    fn encoded_head_weakens_the_etag_and_drops_the_length() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5000"));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        encoded_head(&mut h, Algorithm::Brotli, None);
        assert_eq!(h[header::ETAG], "W/\"v1\"");
        assert_eq!(h[header::CONTENT_ENCODING], "br");
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        assert!(!h.contains_key(header::ACCEPT_RANGES));
        encoded_head(&mut h, Algorithm::Gzip, Some(42));
        assert_eq!(h[header::ETAG], "W/\"v1\"", "weak stays weak");
        assert_eq!(h[header::CONTENT_LENGTH], "42");
    }
}
