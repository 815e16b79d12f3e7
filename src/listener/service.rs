//! The per-request service of a client connection: refuses a request the
//! framing scanner found fault with (400 or 431, then close) before
//! anything is forwarded, hands the rest to [`request::handle`], and keeps the
//! connection's [`ConnActivity`] told which requests are in flight and which
//! the client cancelled before their answer.

use super::activity::ConnActivity;
use crate::proxy::body::{ClientBody, ProxyBody};
use crate::proxy::error::local_response;
use crate::request::route::Aborted;
use crate::request::{self, ConnInfo, Shared};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Serves one request of the connection `activity` belongs to; `last`: the
/// process is retiring (binary upgrade), so an HTTP/1 connection closes
/// after this response.
pub async fn serve(
    gw: Arc<Shared>,
    conn: Arc<ConnInfo>,
    activity: Arc<ConnActivity>,
    last: bool,
    req: Request<Incoming>,
) -> Result<Response<TrackedBody>, Aborted> {
    let http2 = req.version() == Version::HTTP_2;
    let index = activity.request_started(http2);
    let mut pending = Pending {
        activity: Some(activity),
    };
    let resp = match pending.finding(index, http2) {
        Some(v) => {
            tracing::debug!(peer = %conn.peer, "refused request: {}", v.reason());
            conn.stats.codes.inc(v.status().as_u16());
            let body = if v.status() == http::StatusCode::BAD_REQUEST {
                "400 Bad Request\n"
            } else {
                "431 Request Header Fields Too Large\n"
            };
            let mut resp = local_response(v.status(), body);
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        None => match request::handle(gw, conn, req.map(ClientBody::Hyper)).await {
            Ok(resp) => resp,
            Err(aborted) => {
                // A rule aborted it: ended, but not cancelled by the client.
                if let Some(a) = pending.activity.take() {
                    a.request_ended();
                }
                return Err(aborted);
            }
        },
    };
    let mut resp = resp;
    if !http2 && last {
        // A new process serves this listener now: this connection's last.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let activity = pending.activity.take();
    Ok(resp.map(|inner| TrackedBody { inner, activity }))
}

/// A request between its start and its response head. Dropped before the
/// head exists, the client cancelled it (closed, or reset the stream).
struct Pending {
    activity: Option<Arc<ConnActivity>>,
}

impl Pending {
    fn finding(&self, index: u32, http2: bool) -> Option<super::framing::Violation> {
        if http2 {
            return None;
        }
        self.activity.as_ref()?.finding_for(index)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.request_cancelled();
            a.request_ended();
        }
    }
}

/// The response body; the request counts as in flight until it is dropped
/// (hyper drops it when the last byte is written or the client is gone).
pub struct TrackedBody {
    inner: ProxyBody,
    activity: Option<Arc<ConnActivity>>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(a) = self.activity.take() {
            a.request_ended();
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = crate::proxy::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
