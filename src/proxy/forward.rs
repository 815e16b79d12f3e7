//! Sends one request to a server of the chosen farm and returns its
//! response head, streaming both bodies. Owns retries: a request that never
//! reached a server (connect refused, connect timeout, TLS handshake failed,
//! a new connection closed before a byte was written) goes to another server
//! whatever its method, and a server that could not be connected to leaves
//! rotation at once (`health::passive`). A request whose connection failed
//! after it went out but before any response byte (a reset) goes to another
//! server only when it is idempotent and its body was not sent. A request an
//! HTTP/2 server refused unprocessed (REFUSED_STREAM, GOAWAY) goes to
//! another server whatever its method, its body replayed from what was
//! kept of it (`UpstreamBody::replayable`). Once response headers arrived
//! nothing is retried. A gRPC call's `grpc-timeout` shortens the response
//! timeout.

use super::body::{
    BodyTooLarge, ClientBody, ClientBodyError, ProxyBody, ReturnSlot, Unsent, UpstreamBody,
};
use super::connector::ConnectTimeout;
use super::error::{Origin, ProxyError};
use super::exchange::Exchange;
use super::grpc;
use super::headers::{self, ClientSide};
use super::interim::{self, InterimTo};
use super::pool::{BackendPool, Checkin};
use super::protocol::{Alpn, Protocol};
use super::spec::ProxySpec;
use super::upgrade;
use super::upstream::{SendError, Upstream};
use crate::farm::state::Attempt;
use crate::farm::{Farm, PickRequest, Server};
use crate::health::{FarmHealth, Reason};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// At most this many servers are tried for one request.
pub(super) const MAX_ATTEMPTS: usize = 16;

/// The request as it will be sent, minus the per-attempt URI and body.
pub struct Outgoing {
    pub parts: http::request::Parts,
    pub body: ClientBody,
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Rewrites the client's request head for the backend: hop-by-hop headers
/// out, X-Forwarded-* in, Host kept (or set from the authority for HTTP/2).
/// Returns the client's upgrade handle when this is an upgrade request.
pub fn prepare(
    parts: &mut http::request::Parts,
    spec: &ProxySpec,
    client: &ClientSide<'_>,
) -> Option<(OnUpgrade, HeaderValue)> {
    let upgrade = headers::upgrade_protocol(&parts.headers)
        .filter(|proto| parts.version == Version::HTTP_11 && !headers::is_h2c(proto))
        .and_then(|proto| Some((parts.extensions.remove::<OnUpgrade>()?, proto)));
    // `Upgrade: h2c` is dropped with the other hop-by-hop headers and the
    // request goes on as plain HTTP/1.1 (`headers::is_h2c`).
    parts.headers.remove(&headers::HTTP2_SETTINGS);
    let trailers = headers::wants_trailers(&parts.headers) || parts.version == Version::HTTP_2;
    headers::strip_hop_by_hop(&mut parts.headers);
    if trailers {
        // We accept trailers from the backend and pass them on.
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if !parts.headers.contains_key(header::HOST) {
        if let Some(auth) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        }
    }
    let host = parts.headers.get(header::HOST).cloned();
    headers::apply_forwarded(&mut parts.headers, spec, client, host.as_ref());
    headers::apply_client_cert(&mut parts.headers, spec, client.cert);
    if let Some((_, proto)) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, proto.clone());
    }
    upgrade
}

/// What forwarding one request needs, resolved once by the request stage:
/// the upstream, the `proxy:` settings, the farm with its health records and
/// connection pools, and what the request brings to selection.
pub struct Forwarder<'a> {
    pub upstream: &'a Upstream,
    pub spec: &'a ProxySpec,
    pub farm: &'a Farm,
    pub health: &'a Arc<FarmHealth>,
    /// The farm's servers' pools, in server order.
    pub pools: &'a [Arc<BackendPool>],
    /// The farm's `backend_idle_timeout`.
    pub backend_idle_timeout: std::time::Duration,
    /// The farm's `protocol`: HTTP/1.1 or HTTP/2 to its servers.
    pub protocol: Protocol,
    /// The farm's `grpc_retry_on`.
    pub grpc_retry_on: super::grpc::RetryOn,
    pub pick: PickRequest,
    /// The PROXY protocol header each new server connection starts with,
    /// when the farm sends one.
    pub send_proxy: Option<super::send_proxy::Header>,
    /// The request's trace context, when `trace:` is on.
    pub trace: Option<headers::Trace<'a>>,
    /// The farm's `interim_responses: relay`.
    pub relay_interim: bool,
    /// The client that receives interim responses through hyper's client
    /// (an HTTP/1.1 client of the engine), if any: `interim.rs`.
    pub interim: Option<&'a dyn InterimTo>,
}

/// Forwards to `to`'s farm, retrying on another server where that is safe.
pub async fn forward(
    to: &Forwarder<'_>,
    out: Outgoing,
    client_upgrade: Option<OnUpgrade>,
    ex: &mut Exchange,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Outgoing { mut parts, body } = out;
    let (proxy, farm) = (to.spec, to.farm);
    if let Some(t) = &to.trace {
        headers::apply_trace(&mut parts.headers, &t.ctx);
    }
    if content_length(&parts.headers).is_some_and(|n| n > proxy.max_request_body) {
        return Err(ProxyError::BodyTooLarge);
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));

    let body_empty = body.is_end_stream();
    let h2_farm = to.protocol != Protocol::Http1;
    // A gRPC deadline shorter than `response_timeout` bounds the wait
    // (gRPC needs an HTTP/2 farm: HTTP/1.1 farms pay nothing for this).
    let deadline = (h2_farm && grpc::is_grpc(&parts.headers))
        .then(|| grpc::timeout(&parts.headers))
        .flatten()
        .filter(|d| *d < proxy.response_timeout);
    let response_timeout = deadline.unwrap_or(proxy.response_timeout);
    // A request the server may have processed goes to another server only
    // when it is idempotent, up to `retries` times. One that never reached
    // a server (`SendError::Unsent`) always does, once per server: nothing
    // was sent, so nothing can happen twice.
    let mut retries_left = if client_upgrade.is_none() && is_idempotent(&parts.method) {
        proxy.retries
    } else {
        0
    };
    // HTTP/2 farms keep every body's way back: a refused stream is
    // retried whatever the method.
    let slot: Option<ReturnSlot> =
        ((retries_left > 0 || h2_farm) && !body_empty).then(|| Arc::new(Mutex::new(None)));
    let mut body = Some(Unsent::new(body));
    // The last attempt was refused unprocessed: a body sent to it (kept
    // for replay) may go out again.
    let mut refused = false;
    let mut cancelled_retried = false;
    // `grpc_retry_on`: a call answered with one of these statuses alone
    // goes elsewhere, `retries` times at most; the answer is kept for the
    // client in case no other server can take the call.
    let mut grpc_retries_left = if to.grpc_retry_on.is_empty() {
        0
    } else {
        proxy.retries
    };
    let mut held: Option<Held> = None;
    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let mut last_err = ProxyError::NoServer;
    let mut client_upgrade = client_upgrade;

    for attempt in 0..MAX_ATTEMPTS {
        let Some(idx) = farm.pick(&to.pick, &tried[..attempt]) else {
            return held.map_or(Err(last_err), |h| Ok(h.answer(ex, &mut client_upgrade)));
        };
        tried[attempt] = idx;
        let server = &farm.servers[idx];
        if let Some(r) = ex.record() {
            r.server = Some(server.name.clone());
        }

        let mut upstream_body = if body_empty {
            UpstreamBody::empty()
        } else {
            let taken = body.take().or_else(|| {
                slot.as_ref()
                    .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take())
                    .filter(|u| refused || u.sent.is_empty())
            });
            match taken {
                Some(b) => UpstreamBody::new(b, proxy.max_request_body, slot.clone()),
                // The body went out with the failed attempt: cannot retry.
                None => {
                    return held.map_or(Err(last_err), |h| Ok(h.answer(ex, &mut client_upgrade)))
                }
            }
        };
        let alpn = to.protocol.h2_alpn(&server.scheme);
        if alpn.is_some() {
            upstream_body = upstream_body.replayable();
        }
        upstream_body.count_into(server.state.clone());

        let mut req = build_request(
            &mut parts,
            server,
            path_and_query.clone(),
            proxy.preserve_host,
            retries_left == 0,
            upstream_body,
        );
        ex.hold(server.state.clone(), to.health, idx);
        let sent_at = Instant::now();
        let (pool, idle) = (&to.pools[idx], to.backend_idle_timeout);
        // hyper's HTTP/2 client drops 1xx: listened for on HTTP/1 only.
        let hints = to
            .interim
            .filter(|_| alpn != Some(Alpn::H2))
            .map(|client| (interim::listen(&mut req), client));
        // Pinned where it is made: handed on by reference, the wait adds
        // no second copy of it to this future.
        let mut sent = std::pin::pin!(async {
            match alpn {
                None => {
                    to.upstream
                        .send(server, pool, idle, req, to.send_proxy)
                        .await
                }
                Some(alpn) => to.upstream.send_h2(server, pool, alpn, idle, req).await,
            }
        });
        let sent = interim::relayed(sent.as_mut(), hints.as_ref().map(|(p, c)| (&**p, *c)));
        refused = false;
        match tokio::time::timeout(response_timeout, sent).await {
            Ok(Ok((resp, checkin))) => {
                let latency = sent_at.elapsed();
                let status = resp.status().as_u16();
                if alpn.is_some() {
                    if let Some(code) = grpc::status(resp.headers()) {
                        if code == grpc::code::CANCELLED
                            && !cancelled_retried
                            && resp.body().is_end_stream()
                        {
                            // A call cancelled before any answer: what a
                            // gRPC server does with calls that reach it as it
                            // shuts down (after its GOAWAY). Never processed:
                            // once, to another server, like a refused stream.
                            tracing::debug!(farm = %farm.name, server = %server.name, "gRPC call cancelled unanswered");
                            cancelled_retried = true;
                            ex.release();
                            refused = true;
                            last_err = ProxyError::Connect;
                            drop((resp, checkin));
                            continue;
                        }
                        if grpc_retries_left > 0
                            && to.grpc_retry_on.contains(code)
                            && resp.body().is_end_stream()
                        {
                            // The operator said this status is safe to
                            // retry: another server, the answer kept.
                            tracing::debug!(farm = %farm.name, server = %server.name, code, "gRPC status retried (grpc_retry_on)");
                            grpc_retries_left -= 1;
                            to.health.record(idx, Attempt::Response { status, latency });
                            // Counted now: the exchange no longer holds it.
                            server.state.stats.record_grpc(code);
                            ex.release();
                            refused = true;
                            last_err = ProxyError::Backend;
                            held = Some(Held {
                                resp,
                                checkin,
                                code,
                                latency,
                                idx,
                                name: server.name.clone(),
                            });
                            continue;
                        }
                        // Trailers-only: the call's status is in the head.
                        ex.set_grpc_status(code, true);
                    }
                }
                to.health.record(idx, Attempt::Response { status, latency });
                ex.set_upstream_time(latency);
                // The affinity cookie is added by `request::handle`, outside
                // the cache, so a stored response never carries one.
                ex.set_picked(idx);
                return Ok(respond(resp, checkin, &mut client_upgrade));
            }
            Ok(Err(SendError::Unsent {
                cause,
                connect,
                req,
            })) => {
                not_sent(to, idx, &*cause, connect, ex);
                // The head and body come back untouched for the next server.
                let (head, unsent) = req.into_parts();
                parts.headers = head.headers;
                body = unsent.into_unsent();
                last_err = ProxyError::Connect;
            }
            Ok(Err(SendError::Refused(e))) => {
                // Not a failure of the server: it is restarting or
                // draining, and said so before processing anything.
                tracing::debug!(farm = %farm.name, server = %server.name, "refused unprocessed: {e}");
                ex.release();
                refused = true;
                last_err = ProxyError::Connect;
                // Another connection to the same server is "elsewhere" too
                // (a GOAWAY closes one connection, not the server): it may
                // be picked again.
                tried[attempt] = usize::MAX;
            }
            Ok(Err(e)) => {
                let err = classify(&e);
                // A client's broken or oversized body is not the server's failure.
                if err.origin() == Origin::Backend {
                    let reason = err.reason();
                    to.health.record(idx, Attempt::Failed { reason });
                }
                tracing::debug!(farm = %farm.name, server = %server.name, "backend error: {e:?}");
                ex.release();
                if !err.is_retryable() || retries_left == 0 {
                    return Err(err);
                }
                retries_left -= 1;
                last_err = err;
            }
            Err(_) => {
                // The client's own short deadline says nothing of the
                // server's health.
                if deadline.is_none() {
                    let timeout = Attempt::Failed { reason: "timeout" };
                    to.health.record(idx, timeout);
                }
                return Err(ProxyError::Timeout);
            }
        }
    }
    held.map_or(Err(last_err), |h| Ok(h.answer(ex, &mut client_upgrade)))
}

/// A server's trailers-only gRPC answer, kept while the call is retried
/// (`grpc_retry_on`): the client's answer if no other server takes it.
struct Held {
    resp: Response<Incoming>,
    checkin: Checkin,
    code: u8,
    latency: std::time::Duration,
    idx: usize,
    name: std::sync::Arc<str>,
}

impl Held {
    fn answer(self, ex: &mut Exchange, upgrade: &mut Option<OnUpgrade>) -> Response<ProxyBody> {
        // Counted into the server's statuses when it was kept.
        ex.set_grpc_status(self.code, false);
        if let Some(r) = ex.record() {
            r.server = Some(self.name);
        }
        ex.set_upstream_time(self.latency);
        ex.set_picked(self.idx);
        respond(self.resp, self.checkin, upgrade)
    }
}

/// A request that never reached server `idx`: logged, the server out of
/// new picks when it could not be connected to (down or unreachable: now,
/// not at the next probe), the failure recorded and the in-flight slot
/// given back.
pub(super) fn not_sent(
    to: &Forwarder<'_>,
    idx: usize,
    cause: &(dyn std::error::Error + 'static),
    connect: bool,
    ex: &mut Exchange,
) {
    let (farm, server) = (to.farm, &to.farm.servers[idx]);
    tracing::debug!(farm = %farm.name, server = %server.name, "not sent: {cause}");
    if connect {
        to.health
            .server(idx)
            .eject_unreachable(unreachable_reason(cause), to.health);
    }
    let reason = ProxyError::Connect.reason();
    to.health.record(idx, Attempt::Failed { reason });
    ex.release();
}

/// Why a connection could not be made, for the server's health record.
pub(super) fn unreachable_reason(cause: &(dyn std::error::Error + 'static)) -> Reason {
    let chain = std::iter::successors(Some(cause), |e| e.source());
    for e in chain {
        if e.is::<ConnectTimeout>() {
            return Reason::Timeout;
        }
        if e.is::<rustls::Error>() {
            return Reason::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Reason::Refused;
            }
        }
    }
    Reason::Unreachable
}

/// `last`: no retry can follow that needs the head (an unsent request
/// brings its head back).
fn build_request(
    parts: &mut http::request::Parts,
    server: &Server,
    path_and_query: http::uri::PathAndQuery,
    preserve_host: bool,
    last: bool,
    body: UpstreamBody,
) -> Request<UpstreamBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    // Origin form: the connection already goes to the server.
    *req.uri_mut() = Uri::from(path_and_query);
    *req.version_mut() = Version::HTTP_11;
    // Keep the head for another attempt unless this is the last one.
    *req.headers_mut() = if last {
        std::mem::take(&mut parts.headers)
    } else {
        parts.headers.clone()
    };
    if !preserve_host {
        req.headers_mut()
            .insert(header::HOST, server.host_header.clone());
    }
    req
}

fn respond(
    resp: Response<Incoming>,
    checkin: Checkin,
    client_upgrade: &mut Option<OnUpgrade>,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        if let (Some(client), Some(backend)) = (
            client_upgrade.take(),
            parts.extensions.remove::<OnUpgrade>(),
        ) {
            // The connection now belongs to the tunnel (`checkin` dropped).
            upgrade::tunnel(client, backend);
            return Response::from_parts(parts, ProxyBody::empty());
        }
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    // The client's connection has its own version (an HTTP/2 server's
    // answer may go to an HTTP/1.1 client).
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, ProxyBody::upstream(body, checkin))
}

fn classify(e: &SendError) -> ProxyError {
    for s in e.chain() {
        if s.is::<BodyTooLarge>() {
            return ProxyError::BodyTooLarge;
        }
        if s.is::<ClientBodyError>() {
            return ProxyError::BadRequest;
        }
    }
    match e {
        SendError::Unsent { .. } | SendError::Refused(_) => ProxyError::Connect,
        SendError::Http(_) => ProxyError::Backend,
    }
}
