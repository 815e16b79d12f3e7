//! Forwarding: the request path from a parsed request to a streamed
//! response. `handle` is the entry point the listeners call; it routes the
//! request to a farm, then `forward` sends it to a server of that farm.

pub mod body;
pub mod connector;
pub mod error;
pub mod exchange;
pub mod forward;
pub mod headers;
pub mod pool;
pub mod route;
pub mod upgrade;
pub mod upstream;

use crate::gateway::Gateway;
use crate::log::access::AccessRecord;
use crate::metrics::ListenerStats;
use body::ProxyBody;
use error::ProxyError;
use exchange::Exchange;
use headers::ClientSide;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use route::Route;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What is known about a client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub listener: Arc<str>,
    /// The listener's counters, resolved once when it started.
    pub stats: Arc<ListenerStats>,
    pub tls: bool,
    /// The client IP, rendered once for X-Forwarded-For.
    pub client_ip: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, stats: Arc<ListenerStats>, tls: bool) -> Self {
        let ip = crate::config::snapshot::canonical_ip(peer.ip());
        let client_ip = HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnInfo {
            peer,
            local,
            listener: stats.name.clone(),
            stats,
            tls,
            client_ip,
        }
    }
}

/// Serves one request from a client connection.
pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, route::Aborted> {
    let started = Instant::now();
    let snap = gw.snapshot();
    let mut ex = Exchange::new(started);
    if let Some(log) = gw.access_log() {
        let header = |name| {
            log.wants_client_headers()
                .then(|| req.headers().get(name).cloned())
                .flatten()
        };
        let (referer, user_agent) = (
            header(http::header::REFERER),
            header(http::header::USER_AGENT),
        );
        ex.log_with(
            log,
            AccessRecord {
                time: SystemTime::now(),
                client: crate::config::snapshot::canonical_ip(conn.peer.ip()),
                local: conn.local,
                listener: conn.listener.clone(),
                method: req.method().clone(),
                uri: req.uri().clone(),
                version: req.version(),
                status: 0,
                farm: None,
                server: None,
                upstream: None,
                total: Default::default(),
                bytes: 0,
                referer,
                user_agent,
                aborted: false,
            },
        );
    }

    let (mut parts, body) = req.into_parts();
    let result = match route::route(&snap, &conn, &mut parts) {
        Route::Local(resp) => Ok(*resp),
        Route::Fail(e) => Err(e),
        Route::Abort => {
            ex.mark_aborted();
            return Err(route::Aborted);
        }
        Route::Forward(farm, set_headers) => {
            ex.set_snapshot(snap.clone());
            if let Some(r) = ex.record() {
                r.farm = Some(farm.name.clone());
            }
            let client = ClientSide {
                ip: &conn.client_ip,
                trusted: !snap.proxy.trusted_proxies.is_empty()
                    && snap.proxy.is_trusted(conn.peer.ip()),
                proto: if conn.tls { "https" } else { "http" },
            };
            // Before `prepare` rewrites the head: hash key and affinity
            // cookie as the client sent them.
            let pick = farm.pick_request(&parts, conn.peer.ip(), client.trusted, conn.tls);
            let upgrade = forward::prepare(&mut parts, &snap, &client);
            set_headers.apply(&mut parts.headers);
            let upgrade = upgrade.map(|(on, _)| on);
            let answer = crate::cache::serve(
                &gw,
                &snap,
                farm,
                forward::Outgoing { parts, body },
                &pick,
                upgrade,
                &mut ex,
            )
            .await;
            answer.map(|mut resp| {
                if let Some(cookie) = ex.picked().and_then(|i| farm.affinity_cookie(&pick, i)) {
                    // Beside the backend's own cookies, never replacing them.
                    resp.headers_mut()
                        .append(http::header::SET_COOKIE, cookie.clone());
                }
                resp
            })
        }
    };
    let mut resp = result.unwrap_or_else(ProxyError::into_response);
    let status = resp.status().as_u16();
    conn.stats.codes.inc(status);
    if let Some(r) = ex.record() {
        r.status = status;
    }
    resp.body_mut().set_exchange(ex);
    Ok(resp)
}
