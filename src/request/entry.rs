//! The entry point the listeners call for every request, the one place
//! the cache is handed the forwarder, and where its answer passes the
//! compression stage on its way to the client.

use super::route::{self, Route};
use super::{ConnInfo, Shared};
use crate::cache::{self, Answer, Fetch};
use crate::compress;
use crate::config::Snapshot;
use crate::ground::trace_context::TraceContext;
use crate::log::access::AccessRecord;
use crate::proxy::body::{ClientBody, ProxyBody};
use crate::proxy::error::ProxyError;
use crate::proxy::exchange::Exchange;
use crate::proxy::fast::{self, Fast, FastClient};
use crate::proxy::fast_head;
use crate::proxy::forward::{self, Forwarder, Outgoing};
use crate::proxy::headers::{self, ClientSide, Trace};
use crate::proxy::interim::{self, InterimTo};
use http::{Request, Response};
use http_body::Body as _;
use hyper::upgrade::OnUpgrade;
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::AsyncWrite;

/// What serving a request from the HTTP/1 engine gave.
// Returned once per request and matched at once: boxing the response would
// cost an allocation to save a move.
#[allow(clippy::large_enum_variant)]
pub enum Handled {
    /// A response for the client connection to write.
    Response(Response<ProxyBody>),
    /// The fast forward wrote the answer already; `keep_alive`: the client
    /// connection may carry another request.
    Written { keep_alive: bool },
}

/// Serves one request from a client connection.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<ClientBody>,
) -> Result<Response<ProxyBody>, route::Aborted> {
    let mut req = Some(req.into_parts());
    match handle_h1::<tokio::io::Sink>(shared, conn, &mut req, None).await? {
        Handled::Response(resp) => Ok(resp),
        // Only with a fast client, and there is none.
        Handled::Written { .. } => Err(route::Aborted),
    }
}

/// Serves one request; with `fast` (the HTTP/1 engine's client side), a
/// bodiless GET or HEAD routed to a farm whose answer needs neither cache
/// nor compression is forwarded by `proxy::fast` and written to the client
/// there.
///
/// The request stays where the caller keeps it (`req`, taken only when it
/// is handed on whole): moved into this future, it was copied twice more
/// and its 264 bytes kept three times over in the engine's per-request
/// state, which every exchange in flight holds.
pub async fn handle_h1<W: AsyncWrite + Unpin + Send>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: &mut Option<(http::request::Parts, ClientBody)>,
    mut fast: Option<FastClient<'_, W>>,
) -> Result<Handled, route::Aborted> {
    let started = Instant::now();
    let Some((parts, body)) = req.as_mut() else {
        return Err(route::Aborted);
    };
    let snap = shared.snapshot();
    let mut ex = Exchange::new(started);
    // Nothing runs for tracing without a `trace:` section.
    let trace = snap.trace.as_ref().map(|t| Trace {
        ctx: t.begin(conn.client_addr(), &mut parts.headers),
        response_header: t.response_header.as_ref(),
    });
    let log = shared.access_log();
    let spans = trace
        .filter(|t| t.ctx.sampled())
        .and_then(|_| shared.span_exporter());
    if log.is_some() || spans.is_some() {
        // Only the combined and W3C formats log these: no copy otherwise.
        let wants = log.as_ref().is_some_and(|l| l.wants_client_headers());
        let header = |name| wants.then(|| parts.headers.get(name).cloned()).flatten();
        let (referer, user_agent) = (
            header(http::header::REFERER),
            header(http::header::USER_AGENT),
        );
        ex.keep_record(
            AccessRecord {
                time: SystemTime::now(),
                client: conn.client_addr(),
                local: conn.local,
                listener: conn.listener.clone(),
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                status: 0,
                farm: None,
                server: None,
                upstream: None,
                total: Default::default(),
                bytes: 0,
                referer,
                user_agent,
                aborted: false,
                grpc_status: None,
                trace: trace.map(|t| t.ctx),
            },
            log,
            spans.map(|s| (s, conn.tls)),
        );
    }

    // A gRPC client reads farmgate's own errors as gRPC statuses (gRPC
    // clients speak HTTP/2: HTTP/1.1 requests skip the header lookup).
    let grpc =
        parts.version == http::Version::HTTP_2 && crate::proxy::grpc::is_grpc(&parts.headers);
    // The route's parts taken out in a statement of their own: matched
    // around the forwarding, the whole `Route` was kept across its waits.
    let (farm, set_headers, rule_compression, held) = match route::route(&snap, &conn, parts) {
        Route::Forward(farm, set_headers, rule_compression, held) => {
            (farm, set_headers, rule_compression, held)
        }
        Route::Local(resp) => {
            let resp = finish(&conn, ex, Ok(*resp), grpc, trace.as_ref());
            return Ok(Handled::Response(resp));
        }
        Route::Fail(e) => {
            let resp = finish(&conn, ex, Err(e), grpc, trace.as_ref());
            return Ok(Handled::Response(resp));
        }
        Route::Abort => {
            ex.mark_aborted();
            return Err(route::Aborted);
        }
    };
    let result = {
        ex.hold_limits(held);
        if let Some(r) = ex.record() {
            r.farm = Some(farm.name.clone());
        }
        let client_side = ClientSide {
            ip: &conn.client_ip,
            trusted: !snap.proxy.trusted_proxies.is_empty()
                && snap.proxy.is_trusted(conn.peer.ip()),
            proto: if conn.tls { "https" } else { "http" },
            cert: conn.client_cert.as_ref().map(|c| &c.header),
        };
        // Before `prepare` rewrites the head: hash key and affinity
        // cookie as the client sent them.
        let pick = farm.pick_request(parts, conn.peer.ip(), client_side.trusted, conn.tls);
        // A head the fast forward may take is left as it is: if it
        // does, it writes the prepared head without rewriting the map.
        let unprepared = fast.is_some() && set_headers.is_empty() && fast_head::handles(parts);
        let upgrade = if unprepared {
            None
        } else {
            let upgrade = forward::prepare(parts, &snap.proxy, &client_side);
            set_headers.apply(&mut parts.headers);
            upgrade.map(|(on, _)| on)
        };
        let send_proxy = farm
            .send_proxy
            .map(|v| crate::proxy::send_proxy::Header::new(v, conn.peer, conn.local));
        let mut to = Fetcher {
            to: forwarder(&shared, &snap, farm, pick, send_proxy, trace),
            shared: &shared,
            snap: &snap,
        };
        // Negotiated now: the request head moves on to the cache.
        let compress = compress::plan(&farm.compression, rule_compression, parts);
        if let Some(client) = fast.take_if(|_| {
            compress.is_none()
                && farm.cache.is_none()
                // A PROXY header to the backend: hyper's pool keys it.
                && to.to.send_proxy.is_none()
                // HTTP/2 to the servers goes through hyper's client.
                && farm.protocol == crate::proxy::protocol::Protocol::Http1
                && upgrade.is_none()
                && body.is_end_stream()
                && matches!(parts.method, http::Method::GET | http::Method::HEAD)
        }) {
            let side = unprepared.then_some(&client_side);
            match fast::forward(&to.to, parts, side, client, &mut ex).await {
                Fast::Written { status, keep_alive } => {
                    conn.stats.codes.inc(status);
                    if let Some(r) = ex.record() {
                        r.status = status;
                    }
                    // The head's map serves the thread's next request.
                    crate::http1::buffer::recycle_map(std::mem::take(&mut parts.headers));
                    return Ok(Handled::Written { keep_alive });
                }
                Fast::Failed(e) => {
                    let resp = finish(&conn, ex, Err(e), grpc, trace.as_ref());
                    return Ok(Handled::Response(resp));
                }
            }
        }
        if unprepared {
            // Not taken by the fast forward after all.
            forward::prepare(parts, &snap.proxy, &client_side);
        }
        // Not fast: an HTTP/1.1 client still gets the backend's
        // interim responses, written while the fetch waits.
        let hints = fast
            .filter(|c| c.minor == 1 && farm.relay_interim)
            .map(|c| interim::ClientWriter::new(c.to));
        to.to.interim = hints.as_ref().map(|w| w as &dyn InterimTo);
        let may_encode = compress.as_ref().is_some_and(compress::Plan::may_encode);
        // Handed on whole: the cache and the forwarder own it from here.
        let Some((parts, body)) = req.take() else {
            return Err(route::Aborted);
        };
        let out = Outgoing { parts, body };
        let cache = farm.cache.as_ref();
        // Boxed: the cache and hyper's client make the largest future
        // on the path (~5.5 KiB), which every connection's serving
        // future would otherwise reserve, fast forward or not.
        let answer = Box::pin(cache::serve(&to, cache, may_encode, out, upgrade, &mut ex)).await;
        let answer = match (answer, compress) {
            (Ok(resp), Some(plan)) => Ok(compress::apply(plan, resp).await),
            (answer, _) => answer,
        };
        answer.map(|mut resp| {
            if let Some(cookie) = ex.picked().and_then(|i| farm.affinity_cookie(&pick, i)) {
                // Beside the backend's own cookies, never replacing them.
                resp.headers_mut()
                    .append(http::header::SET_COOKIE, cookie.clone());
            }
            resp
        })
    };
    Ok(Handled::Response(finish(
        &conn,
        ex,
        result,
        grpc,
        trace.as_ref(),
    )))
}

/// The response (or the error's), counted, carrying the exchange.
fn finish(
    conn: &ConnInfo,
    mut ex: Exchange,
    result: Result<Response<ProxyBody>, ProxyError>,
    grpc: bool,
    trace: Option<&Trace<'_>>,
) -> Response<ProxyBody> {
    let mut resp = match result {
        Ok(resp) => resp,
        // A gRPC client gets farmgate's own errors as gRPC statuses.
        Err(e) if grpc => {
            ex.set_grpc_status(crate::proxy::grpc::code_of(e), false);
            crate::proxy::grpc::error_response(e)
        }
        Err(e) => e.into_response(),
    };
    headers::set_trace_response(resp.headers_mut(), trace);
    let status = resp.status().as_u16();
    conn.stats.codes.inc(status);
    if let Some(r) = ex.record() {
        r.status = status;
    }
    resp.body_mut().set_exchange(ex);
    resp
}

/// The cache fetches what it does not have through the forwarder.
/// How a request to `farm` is forwarded (interim responses as the farm
/// says, none listened for yet).
fn forwarder<'a>(
    shared: &'a Shared,
    snap: &'a Snapshot,
    farm: &'a crate::config::FarmRuntime,
    pick: crate::farm::PickRequest,
    send_proxy: Option<crate::proxy::send_proxy::Header>,
    trace: Option<Trace<'a>>,
) -> Forwarder<'a> {
    Forwarder {
        upstream: &shared.upstream,
        spec: &snap.proxy,
        farm,
        health: &farm.health,
        pools: &farm.pools,
        backend_idle_timeout: farm.backend_idle_timeout,
        protocol: farm.protocol,
        grpc_retry_on: farm.grpc_retry_on,
        pick,
        send_proxy,
        trace,
        relay_interim: farm.relay_interim,
        interim: None,
    }
}

struct Fetcher<'a> {
    to: Forwarder<'a>,
    shared: &'a Arc<Shared>,
    snap: &'a Arc<Snapshot>,
}

impl Fetch for Fetcher<'_> {
    type Detached = Detached;

    fn fetch(
        &self,
        out: Outgoing,
        upgrade: Option<OnUpgrade>,
        ex: &mut Exchange,
    ) -> impl Future<Output = Answer> + Send {
        forward::forward(&self.to, out, upgrade, ex)
    }

    fn detach(&self) -> Option<Detached> {
        let farm = self
            .snap
            .farms
            .iter()
            .position(|f| std::ptr::eq(&f.farm, self.to.farm))?;
        Some(Detached {
            shared: self.shared.clone(),
            snap: self.snap.clone(),
            farm,
            pick: self.to.pick,
            send_proxy: self.to.send_proxy,
            trace: self.to.trace.map(|t| t.ctx),
        })
    }
}

/// A forwarder that owns its snapshot, for fetches that outlive their
/// request (background revalidation).
struct Detached {
    shared: Arc<Shared>,
    snap: Arc<Snapshot>,
    farm: usize,
    pick: crate::farm::PickRequest,
    send_proxy: Option<crate::proxy::send_proxy::Header>,
    /// The request's trace: a revalidation is part of it.
    trace: Option<TraceContext>,
}

impl Fetch for Detached {
    type Detached = Detached;

    async fn fetch(&self, out: Outgoing, upgrade: Option<OnUpgrade>, ex: &mut Exchange) -> Answer {
        let farm = &self.snap.farms[self.farm];
        let trace = self.trace.map(|ctx| Trace {
            ctx,
            response_header: None,
        });
        let mut to = forwarder(
            &self.shared,
            &self.snap,
            farm,
            self.pick,
            self.send_proxy,
            trace,
        );
        // A background revalidation has no client waiting.
        to.relay_interim = false;
        forward::forward(&to, out, upgrade, ex).await
    }

    fn detach(&self) -> Option<Detached> {
        None
    }
}
