//! Writing a response of the request pipeline (`Response<ProxyBody>`) to an
//! HTTP/1 client from the engine's connection loop: the head in one buffer,
//! framed exactly as hyper's HTTP/1 server frames it (the switch
//! `runtime.http1` must not change what a client sees): lower-case names,
//! `Content-Length` from the body's exact size or chunked when unknown
//! (until close for HTTP/1.0), none for HEAD, 1xx, 204 and 304, `Date`
//! when the response has none, `Connection` as the connection goes on;
//! trailers only to a client that sent `TE: trailers` and only the fields
//! the response's `Trailer` names. Body frames are written as they come,
//! the head with the first of them when it is ready at once.

use super::activity::ConnActivity;
use crate::http1::body::chunk_header;
use crate::http1::date;
use crate::http1::io::{write_both, COPY_MAX};
use crate::http1::upstream::push_decimal;
use crate::proxy::body::{BoxError, ProxyBody};
use bytes::Buf;
use http::header::{self, HeaderMap, HeaderName};
use http::{Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// What the client connection is, for the head.
#[derive(Debug, Clone, Copy)]
pub(super) struct Client {
    /// HTTP/1.0 (false) or HTTP/1.1 (true).
    pub http11: bool,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    pub head_request: bool,
    /// The request said `TE: trailers`.
    pub trailers: bool,
}

/// How the body goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Encoder {
    Length,
    Chunked(Option<Vec<HeaderName>>),
    UntilClose,
}

/// The response could not be written whole: the connection closes.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("writing to the client: {0}")]
    Io(#[from] std::io::Error),
    #[error("the response body failed: {0}")]
    Body(BoxError),
}

/// Writes `resp` to `to` using `out` as the write buffer; returns whether
/// the connection may carry another request.
pub(super) async fn write_response<W: AsyncWrite + Unpin>(
    to: &mut W,
    resp: Response<ProxyBody>,
    client: Client,
    out: &mut Vec<u8>,
    activity: &ConnActivity,
) -> Result<bool, WriteError> {
    let mut to = Noted {
        inner: to,
        activity,
    };
    let (parts, mut body) = resp.into_parts();
    crate::http1::buffer::ensure_scratch(out);
    out.clear();
    let length = if body.is_end_stream() {
        None
    } else {
        Some(body.size_hint().exact())
    };
    let status = parts.status;
    let (encoder, keep_alive) = write_head(parts, length, client, out);
    if !can_have_body(client.head_request, status) {
        drop(body);
        to.write_all(out).await?;
        return Ok(keep_alive);
    }
    let mut hdr = [0u8; 18];
    let mut trailers: Option<HeaderMap> = None;
    while !body.is_end_stream() {
        let frame = {
            let mut next = pin!(body.frame());
            match poll_once(next.as_mut()).await {
                Some(f) => f,
                None => {
                    // Nothing ready: what is written so far goes out first.
                    if !out.is_empty() {
                        to.write_all(out).await?;
                        out.clear();
                    }
                    next.await
                }
            }
        };
        let frame = match frame {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                to.write_all(out).await?;
                return Err(WriteError::Body(e));
            }
        };
        match frame.into_data() {
            Ok(mut data) => {
                if matches!(encoder, Encoder::Chunked(_)) && data.has_remaining() {
                    out.extend_from_slice(chunk_header(data.remaining() as u64, &mut hdr));
                    while data.has_remaining() {
                        let n = data.chunk().len();
                        out.extend_from_slice(data.chunk());
                        data.advance(n);
                    }
                    out.extend_from_slice(b"\r\n");
                }
                while data.has_remaining() {
                    // A large piece (a cache hit's body) goes out from where
                    // it is, with what is buffered, not copied behind it.
                    let chunk = data.chunk();
                    let n = chunk.len();
                    if n > COPY_MAX {
                        write_both(&mut to, out, chunk).await?;
                        out.clear();
                    } else {
                        out.extend_from_slice(chunk);
                    }
                    data.advance(n);
                }
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
        if !body.is_end_stream() && out.len() >= 16 << 10 {
            to.write_all(out).await?;
            out.clear();
        }
    }
    if let Encoder::Chunked(allowed) = &encoder {
        out.extend_from_slice(b"0\r\n");
        if let (true, Some(allowed), Some(trailers)) = (client.trailers, allowed, &trailers) {
            for (name, value) in trailers {
                if allowed.contains(name) {
                    push_field(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    if !out.is_empty() {
        to.write_all(out).await?;
    }
    to.flush().await?;
    Ok(keep_alive && encoder != Encoder::UntilClose)
}

/// Polls `fut` once: its output if it is ready now.
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut fut).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

fn can_chunked(head_request: bool, status: StatusCode) -> bool {
    !head_request
        && !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn can_have_body(head_request: bool, status: StatusCode) -> bool {
    can_chunked(head_request, status)
}

fn can_have_content_length(status: StatusCode) -> bool {
    !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the head; `length`: None for an empty body, else its exact
/// length when known. Returns the body's encoder and whether the
/// connection goes on.
fn write_head(
    mut parts: http::response::Parts,
    length: Option<Option<u64>>,
    client: Client,
    out: &mut Vec<u8>,
) -> (Encoder, bool) {
    let status = parts.status;
    let mut keep_alive = client.keep_alive;
    let mut version = parts.version;
    let headers = &mut parts.headers;
    if !client.http11 {
        // An HTTP/1.0 client keeps the connection only when told so.
        if !has_token(headers, header::CONNECTION, "keep-alive") {
            if version == Version::HTTP_10 {
                keep_alive = false;
            } else if keep_alive {
                headers.append(
                    header::CONNECTION,
                    http::HeaderValue::from_static("keep-alive"),
                );
            }
        }
        version = Version::HTTP_10;
    } else if !keep_alive && !has_token(headers, header::CONNECTION, "close") {
        headers.append(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    let http10 = version == Version::HTTP_10;
    let mut last = !keep_alive;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match reason {
        Some(r) => out.extend_from_slice(r.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    let method_head = client.head_request;
    let chunkable = !http10 && can_chunked(method_head, status);
    let mut encoder = Encoder::Length;
    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut allowed: Option<Vec<HeaderName>> = None;
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        match *name {
            header::CONTENT_LENGTH => {
                let Some(first) = values.next() else { continue };
                if length.is_none() && !method_head {
                    // An empty body: its length is written below.
                    continue;
                }
                push_field(out, b"content-length", first.as_bytes());
                wrote_len = true;
            }
            header::TRANSFER_ENCODING => {
                if !chunkable {
                    continue;
                }
                let joined = join(values);
                let chunked = joined
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                out.extend_from_slice(b"transfer-encoding: ");
                out.extend_from_slice(&joined);
                out.extend_from_slice(if chunked { b"\r\n" } else { b", chunked\r\n" });
                encoder = Encoder::Chunked(None);
                wrote_len = true;
            }
            header::CONNECTION => {
                let joined = join(values);
                if joined
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
                {
                    last = true;
                }
                push_field(out, b"connection", &joined);
            }
            header::TRAILER => {
                if !chunkable {
                    continue;
                }
                let joined = join(values);
                let names = allowed.get_or_insert_with(Vec::new);
                for t in joined.split(|&b| b == b',') {
                    if let Ok(n) = HeaderName::from_bytes(t.trim_ascii()) {
                        names.push(n);
                    }
                }
                push_field(out, b"trailer", &joined);
            }
            _ => {
                wrote_date |= *name == header::DATE;
                for v in values {
                    push_field(out, name.as_str().as_bytes(), v.as_bytes());
                }
            }
        }
    }
    if !wrote_len {
        encoder = match length {
            Some(None) if !chunkable => Encoder::UntilClose,
            Some(None) => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Encoder::Chunked(None)
            }
            None | Some(Some(0)) => {
                if can_have_content_length(status) && !method_head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Encoder::Length
            }
            Some(Some(n)) => {
                if can_have_content_length(status) {
                    out.extend_from_slice(b"content-length: ");
                    push_decimal(out, n);
                    out.extend_from_slice(b"\r\n");
                }
                Encoder::Length
            }
        };
    }
    if !can_have_body(method_head, status) {
        encoder = Encoder::Length;
    }
    if let (Encoder::Chunked(a), Some(names)) = (&mut encoder, allowed) {
        *a = Some(names);
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&date::now());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (encoder, !last)
}

/// A field's values joined with ", " (as hyper writes `Connection`,
/// `Transfer-Encoding` and `Trailer`).
fn join<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> Vec<u8> {
    let mut joined = Vec::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    joined
}

/// The client's write side, telling the connection's watchdog when a
/// write waits on the client and when it moves (the send timeout).
pub(super) struct Noted<'a, W> {
    inner: &'a mut W,
    activity: &'a ConnActivity,
}

impl<'a, W> Noted<'a, W> {
    pub fn new(inner: &'a mut W, activity: &'a ConnActivity) -> Self {
        Noted { inner, activity }
    }
}

impl<W> Noted<'_, W> {
    /// Tells the watchdog how a write went.
    fn note(&self, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match &polled {
            Poll::Pending => self.activity.write_waiting(),
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.write_progress(),
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Noted<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_write(cx, buf);
        this.note(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_write_vectored(cx, bufs);
        this.note(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut *this.inner).poll_flush(cx);
        match &polled {
            Poll::Pending => this.activity.write_waiting(),
            Poll::Ready(_) => this.activity.write_progress(),
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "engine_write_tests.rs"]
mod tests;
