//! Routing a request: runs the snapshot's rules and turns their decision
//! into what `handle` does next: forward to a farm (with the rewritten URI
//! in place, the headers rules set and the compression a rule chose),
//! answer locally (redirect, respond, 400, 403, 404, or a limit's 429), or
//! abort the connection. The limits are checked here ([`super::limit`]),
//! once the rules have said which apply and before the URL is rewritten.

use super::limit::{self, Head, Held};
use super::ConnInfo;
use crate::compress::RuleCompression;
use crate::config::{FarmRuntime, Snapshot};
use crate::ground::net::canonical_ip;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::rules::{Outcome, RequestView};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, Uri};

/// Where a request goes.
pub enum Route<'s> {
    /// The farm, the request headers rules set, the compression a rule
    /// chose instead of the farm's, and the places the request holds under
    /// limits' `concurrent` caps (kept until its response ends).
    Forward(&'s FarmRuntime, SetHeaders, RuleCompression<'s>, Held),
    Local(Box<Response<ProxyBody>>),
    Fail(ProxyError),
    Abort,
}

/// A rule's `abort`: returned from the service so hyper drops the
/// connection (HTTP/1) or resets the stream (HTTP/2) without a response.
#[derive(Debug, thiserror::Error)]
#[error("request aborted by a rule")]
pub struct Aborted;

/// Request headers rules set, applied after the forwarding headers.
pub struct SetHeaders(Vec<(HeaderName, HeaderValue)>);

impl SetHeaders {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn apply(self, headers: &mut HeaderMap) {
        for (name, value) in self.0 {
            if value.is_empty() {
                headers.remove(&name);
            } else {
                headers.insert(name, value);
            }
        }
    }
}

/// Runs the rules for a request head; a rewritten URL replaces the path
/// and query in `parts.uri` (the forwarder sends that).
pub fn route<'s>(
    snap: &'s Snapshot,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
) -> Route<'s> {
    if let Some(resp) = acme_http01_answer(parts) {
        return Route::Local(resp);
    }
    let client = canonical_ip(conn.peer.ip());
    let view = RequestView::new(
        &parts.method,
        &parts.uri,
        parts.version,
        &parts.headers,
        conn.client_ip.as_bytes(),
        conn.local.port(),
        conn.tls,
    )
    .with_client(client)
    .with_client_cert(conn.client_cert.as_deref());
    let decision = snap.rules.evaluate(&view);
    if let Some(i) = decision.rule {
        tracing::debug!(rule = ?snap.rules.name(i), uri = %parts.uri, "rule matched");
    }
    let farm = match &decision.outcome {
        Outcome::Route { farm, .. } => farm.or(snap.default_farm).and_then(|i| snap.farms.get(i)),
        _ => None,
    };
    let held = if snap.limits.is_empty() {
        Held::new()
    } else {
        let listener = snap.listeners.iter().find(|l| l.name == conn.listener);
        let applied = listener
            .map_or(&[][..], |l| &l.limits[..])
            .iter()
            .chain(farm.map_or(&[][..], |f| &f.limits[..]))
            .map(|&i| (i, None))
            .chain(decision.limits.iter().map(|h| (h.limit, h.capture)));
        match limit::check(&snap.limits, &Head { parts, client }, applied) {
            Ok(held) => held,
            Err(refusal) => {
                tracing::debug!(limit = %refusal.limit, %client, uri = %parts.uri, "limited");
                return Route::Local(Box::new(refusal.into_response()));
            }
        }
    };
    match decision.outcome {
        Outcome::Route { url, .. } => {
            let Some(farm) = farm else {
                return Route::Fail(ProxyError::NoRoute);
            };
            if let Some(pq) = url {
                let mut up = std::mem::take(&mut parts.uri).into_parts();
                up.path_and_query = Some(pq);
                match Uri::from_parts(up) {
                    Ok(uri) => parts.uri = uri,
                    Err(_) => return Route::Fail(ProxyError::BadRequest),
                }
            }
            let compression = decision
                .compression
                .and_then(|i| snap.rule_compression.get(i));
            Route::Forward(farm, SetHeaders(decision.set_headers), compression, held)
        }
        Outcome::Redirect { status, location } => {
            let mut resp = Response::new(ProxyBody::empty());
            *resp.status_mut() = status;
            resp.headers_mut().insert(header::LOCATION, location);
            Route::Local(Box::new(resp))
        }
        Outcome::Respond {
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(ProxyBody::full(body));
            *resp.status_mut() = status;
            for (name, value) in headers {
                resp.headers_mut().append(name, value);
            }
            Route::Local(Box::new(resp))
        }
        Outcome::Abort => Route::Abort,
        Outcome::BadRequest => Route::Fail(ProxyError::BadRequest),
        Outcome::Forbidden => Route::Fail(ProxyError::Forbidden),
    }
}

/// The answer to an ACME HTTP-01 validation (RFC 8555 §8.3), before any
/// rule runs so no rule can redirect or refuse it: a `GET` of
/// `/.well-known/acme-challenge/<token>` for a token a pending order
/// published gets its key authorization. Any other path is one prefix
/// comparison.
fn acme_http01_answer(parts: &http::request::Parts) -> Option<Box<Response<ProxyBody>>> {
    let path = parts.uri.path();
    if !path.starts_with(crate::tls::acme::HTTP01_PREFIX) || parts.method != http::Method::GET {
        return None;
    }
    let answer = crate::tls::acme::book().http01_answer(path)?;
    let mut resp = Response::new(ProxyBody::full(answer.into()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Some(Box::new(resp))
}
