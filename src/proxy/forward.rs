//! Sends one request to a server of the chosen farm and returns its
//! response head, streaming both bodies. Owns retries: a request whose
//! connection failed before any response byte (connect refused, connect
//! timeout, reset, also on a reused pooled connection) goes to another
//! server when it is idempotent and its body was not sent. Once response
//! headers arrived nothing is retried.

use super::body::{BodyTooLarge, ClientBodyError, ProxyBody, ReturnSlot, UpstreamBody};
use super::error::{Origin, ProxyError};
use super::exchange::Exchange;
use super::headers::{self, ClientSide};
use super::pool::{BackendPool, Checkin};
use super::spec::ProxySpec;
use super::upgrade;
use super::upstream::{SendError, Upstream};
use crate::farm::state::Attempt;
use crate::farm::{Farm, PickRequest, Server};
use crate::health::FarmHealth;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// At most this many servers are tried for one request.
const MAX_ATTEMPTS: usize = 16;

/// The request as it will be sent, minus the per-attempt URI and body.
pub struct Outgoing {
    pub parts: http::request::Parts,
    pub body: Incoming,
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
        .filter(|_| parts.version == Version::HTTP_11)
        .and_then(|proto| Some((parts.extensions.remove::<OnUpgrade>()?, proto)));
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
    pub pick: PickRequest,
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
    if content_length(&parts.headers).is_some_and(|n| n > proxy.max_request_body) {
        return Err(ProxyError::BodyTooLarge);
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));

    let body_empty = body.is_end_stream();
    let retryable = client_upgrade.is_none() && is_idempotent(&parts.method);
    let max_attempts = if retryable {
        (proxy.retries as usize + 1).min(MAX_ATTEMPTS)
    } else {
        1
    };
    let slot: Option<ReturnSlot> =
        (max_attempts > 1 && !body_empty).then(|| Arc::new(Mutex::new(None)));
    let mut body = Some(body);
    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let mut last_err = ProxyError::NoServer;
    let mut client_upgrade = client_upgrade;

    for attempt in 0..max_attempts {
        let Some(idx) = farm.pick(&to.pick, &tried[..attempt]) else {
            return Err(last_err);
        };
        tried[attempt] = idx;
        let server = &farm.servers[idx];
        let last = attempt + 1 == max_attempts;
        if let Some(r) = ex.record() {
            r.server = Some(server.name.clone());
        }

        let mut upstream_body = if body_empty {
            UpstreamBody::empty()
        } else {
            let taken = body.take().or_else(|| {
                slot.as_ref()
                    .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take())
            });
            match taken {
                Some(b) => UpstreamBody::new(b, proxy.max_request_body, slot.clone()),
                // The body went out with the failed attempt: cannot retry.
                None => return Err(last_err),
            }
        };
        upstream_body.count_into(server.state.clone());

        let req = build_request(
            &mut parts,
            server,
            path_and_query.clone(),
            proxy.preserve_host,
            last,
            upstream_body,
        );
        ex.hold(server.state.clone(), to.health, idx);
        let sent_at = Instant::now();
        let sent = to.upstream.send(server, &to.pools[idx], req);
        match tokio::time::timeout(proxy.response_timeout, sent).await {
            Ok(Ok((resp, checkin))) => {
                let latency = sent_at.elapsed();
                let status = resp.status().as_u16();
                to.health.record(idx, Attempt::Response { status, latency });
                ex.set_upstream_time(latency);
                // The affinity cookie is added by `request::handle`, outside
                // the cache, so a stored response never carries one.
                ex.set_picked(idx);
                return Ok(respond(resp, checkin, &mut client_upgrade));
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
                if !err.is_retryable() {
                    return Err(err);
                }
                last_err = err;
            }
            Err(_) => {
                let timeout = Attempt::Failed { reason: "timeout" };
                to.health.record(idx, timeout);
                return Err(ProxyError::Timeout);
            }
        }
    }
    Err(last_err)
}

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
        SendError::Connect(_) => ProxyError::Connect,
        SendError::Http(_) => ProxyError::Backend,
    }
}
