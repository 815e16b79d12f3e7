//! Byte ranges answered by the cache (RFC 9110 §14): a `Range: bytes=...`
//! GET of a farm with a cache is served from the complete 200 the cache
//! holds or fetches, as a `206` with `Content-Range`, or a `416` when the
//! range lies past the end. One range per request; a request for several
//! ranges gets the whole 200, as RFC 9110 §14.2 allows (nginx does the
//! same for ranges it would have to reorder). `If-Range` is honoured with
//! strong validators only. A backend's own `206` is passed on untouched and
//! never stored (`policy.rs`).

use crate::proxy::body::{BoxError, ProxyBody};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// One byte range as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `first-last`, `last` absent for "to the end".
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// What a request asks: a single range and its `If-Range`, read before the
/// request head moves on.
#[derive(Debug, Clone)]
pub struct Wanted {
    spec: Spec,
    if_range: Option<HeaderValue>,
}

impl Wanted {
    /// `None` when there is no `Range`, it is not one valid byte range, or
    /// there are several (the whole response is then sent).
    pub fn from_request(headers: &HeaderMap) -> Option<Wanted> {
        let mut lines = headers.get_all(header::RANGE).iter();
        let (value, None) = (lines.next()?, lines.next()) else {
            return None;
        };
        Some(Wanted {
            spec: parse(value.as_bytes())?,
            if_range: headers.get(header::IF_RANGE).cloned(),
        })
    }

    /// Does `If-Range` (if any) still match the response's validators?
    /// Only strong comparisons count (RFC 9110 §13.1.5).
    fn if_range_holds(&self, h: &HeaderMap) -> bool {
        let Some(v) = &self.if_range else {
            return true;
        };
        let v = v.as_bytes();
        if v.starts_with(b"\"") {
            return h.get(header::ETAG).is_some_and(|e| e.as_bytes() == v);
        }
        // A date: the exact Last-Modified.
        !v.starts_with(b"W/")
            && h.get(header::LAST_MODIFIED)
                .is_some_and(|lm| lm.as_bytes() == v)
    }
}

/// Parses `bytes=first-last`, `bytes=first-` or `bytes=-suffix`.
fn parse(v: &[u8]) -> Option<Spec> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (unit, set) = v.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if first.trim().is_empty() {
        return Some(Spec::Suffix(num(last)?));
    }
    let first = num(first)?;
    if last.trim().is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = num(last)?;
    (last >= first).then_some(Spec::From(first, Some(last)))
}

/// The inclusive span of `spec` in a representation of `len` bytes, or
/// `None` when it is unsatisfiable.
fn resolve(spec: Spec, len: u64) -> Option<(u64, u64)> {
    match spec {
        Spec::From(first, _) if first >= len => None,
        Spec::From(first, last) => Some((first, last.map_or(len - 1, |l| l.min(len - 1)))),
        Spec::Suffix(0) => None,
        Spec::Suffix(_) if len == 0 => None,
        Spec::Suffix(n) => Some((len.saturating_sub(n), len - 1)),
    }
}

/// Turns a complete `200` with a known length into the `206` (or `416`)
/// `wanted` asks for. Anything else passes unchanged.
pub fn answer(wanted: &Wanted, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    if resp.status() != StatusCode::OK || !wanted.if_range_holds(resp.headers()) {
        return resp;
    }
    let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return resp;
    };
    if resp.headers().contains_key(header::CONTENT_ENCODING) {
        // Ranges of an encoded body would be of the encoding, not of what
        // the client asked for; send it whole.
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Some((first, last)) = resolve(wanted.spec, len) else {
        parts.status = StatusCode::RANGE_NOT_SATISFIABLE;
        parts.headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{len}"))
                .unwrap_or(HeaderValue::from_static("bytes */*")),
        );
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        return Response::from_parts(parts, ProxyBody::empty());
    };
    let count = last - first + 1;
    parts.status = StatusCode::PARTIAL_CONTENT;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
        parts.headers.insert(header::CONTENT_RANGE, v);
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    let sliced = Slice {
        inner: body,
        skip: first,
        left: count,
    };
    let boxed = http_body_util::BodyExt::boxed_unsync(sliced);
    Response::from_parts(parts, ProxyBody::boxed(boxed))
}

/// `inner` with its first `skip` bytes dropped and ended after `left`.
/// A stored body is one `Bytes`, so slicing it copies nothing.
struct Slice {
    inner: ProxyBody,
    skip: u64,
    left: u64,
}

impl Body for Slice {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while this.left > 0 {
            let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) else {
                return Poll::Ready(Some(Err("the response ended before its range".into())));
            };
            let Ok(mut data) = frame?.into_data() else {
                continue; // trailers have no place in a 206
            };
            let n = data.len() as u64;
            if this.skip >= n {
                this.skip -= n;
                continue;
            }
            let start = this.skip as usize;
            this.skip = 0;
            let end = (start as u64 + this.left).min(n) as usize;
            data = data.slice(start..end);
            this.left -= data.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn wanted(range: &'static str, if_range: Option<&'static str>) -> Option<Wanted> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static(range));
        if let Some(v) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_static(v));
        }
        Wanted::from_request(&h)
    }

    fn stored(body: &'static [u8]) -> Response<ProxyBody> {
        let mut r = Response::new(ProxyBody::full(Bytes::from_static(body)));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        r.headers_mut()
            .insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        r
    }

    async fn body(r: Response<ProxyBody>) -> Vec<u8> {
        r.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn range_syntax() {
        assert_eq!(parse(b"bytes=0-4"), Some(Spec::From(0, Some(4))));
        assert_eq!(parse(b"Bytes = 5-"), Some(Spec::From(5, None)));
        assert_eq!(parse(b"bytes=-3"), Some(Spec::Suffix(3)));
        for bad in [
            "bytes=4-1",
            "items=0-1",
            "bytes=a-b",
            "bytes=",
            "bytes=0-1,3-4",
            "bytes=--1",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn ranges_of_a_stored_body() {
        let r = answer(&wanted("bytes=2-5", None).unwrap(), stored(b"0123456789"));
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 2-5/10");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "4");
        assert_eq!(body(r).await, b"2345");
        let r = answer(&wanted("bytes=-3", None).unwrap(), stored(b"0123456789"));
        assert_eq!(body(r).await, b"789");
        let r = answer(&wanted("bytes=7-100", None).unwrap(), stored(b"0123456789"));
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 7-9/10");
        let r = answer(&wanted("bytes=10-", None).unwrap(), stored(b"0123456789"));
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */10");
    }

    #[tokio::test]
    async fn if_range_needs_a_strong_match() {
        let r = answer(
            &wanted("bytes=0-0", Some("\"v1\"")).unwrap(),
            stored(b"abc"),
        );
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        let r = answer(
            &wanted("bytes=0-0", Some("\"v2\"")).unwrap(),
            stored(b"abc"),
        );
        assert_eq!(r.status(), StatusCode::OK, "changed: the whole response");
        let r = answer(
            &wanted("bytes=0-0", Some("W/\"v1\"")).unwrap(),
            stored(b"abc"),
        );
        assert_eq!(r.status(), StatusCode::OK, "weak validators never match");
    }

    #[tokio::test]
    async fn a_streamed_body_is_sliced_across_frames() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = ["012", "345", "678", "9"]
            .into_iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let mut r = Response::new(ProxyBody::boxed(stream.boxed_unsync()));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(10));
        let r = answer(&wanted("bytes=4-7", None).unwrap(), r);
        assert_eq!(body(r).await, b"4567");
    }
}
