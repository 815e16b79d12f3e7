//! The request-time abuse check: [`check`] applies the limits a request
//! meets (its listener's, its farm's, and those its matching rules chose)
//! and either lets it pass, holding its places under the limits'
//! `concurrent` caps until the response ends, or gives the [`Refusal`] the
//! client gets: the limit's status (429 by default) with `Retry-After` and
//! the IETF `RateLimit-Policy` / `RateLimit` headers.
//!
//! It reads the request through [`RequestKeys`], so any HTTP path (hyper's,
//! or an own HTTP/1 codec) can call it with its own view of the head.
//! Passing costs per limit: the key found in place and hashed, one store
//! check (compare-and-swap on a fixed table), an atomic counter; no lock,
//! no allocation. Only a refusal formats its `RateLimit` header.

use crate::limits::key::{self, RequestKeys};
use crate::limits::{Admit, Decision, InFlightGuard, Limits};
use crate::proxy::body::ProxyBody;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use smallvec::SmallVec;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Places a passed request holds under `concurrent` caps; given back when
/// dropped (the request stage hangs them on the response's exchange).
pub type Held = SmallVec<[InFlightGuard; 2]>;

/// The answer to a request a limit refused.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// Whole seconds until a request of this key would pass (at least 1).
    pub retry_after: u64,
    pub policy: HeaderValue,
    /// `RateLimit`: the policy's name, nothing left, when it refills.
    pub ratelimit: HeaderValue,
    /// The limit's name (for the log line).
    pub limit: std::sync::Arc<str>,
}

impl Refusal {
    fn new(limit: &crate::limits::Limit, wait: Duration) -> Refusal {
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let retry_after = retry_after.max(1);
        let text = format!(
            "{};r=0;t={retry_after}",
            limit
                .policy
                .to_str()
                .ok()
                .and_then(|p| p.split(';').next())
                .unwrap_or("\"limit\"")
        );
        Refusal {
            status: limit.status,
            retry_after,
            policy: limit.policy.clone(),
            ratelimit: HeaderValue::from_str(&text).unwrap_or_else(|_| limit.policy.clone()),
            limit: limit.name.clone(),
        }
    }

    /// The headers of the refusal, for any HTTP path.
    pub fn headers(&self) -> [(&HeaderName, HeaderValue); 3] {
        [
            (&RETRY_AFTER, HeaderValue::from(self.retry_after)),
            (&RATELIMIT_POLICY, self.policy.clone()),
            (&RATELIMIT, self.ratelimit.clone()),
        ]
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let body: &'static str = match self.status {
            StatusCode::TOO_MANY_REQUESTS => "429 Too Many Requests\n",
            StatusCode::SERVICE_UNAVAILABLE => "503 Service Unavailable\n",
            _ => "Request refused by a rate limit\n",
        };
        let mut resp = crate::proxy::error::local_response(self.status, body);
        for (name, value) in self.headers() {
            resp.headers_mut().insert(name.clone(), value);
        }
        resp
    }
}

/// Applies limits `applied` (indexes into `limits`, each with its rule
/// capture's hash when it counts by `{R:n}`) to a request, in order; a
/// limit named twice counts once. The first limit that refuses decides.
pub fn check<R: RequestKeys>(
    limits: &Limits,
    req: &R,
    applied: impl IntoIterator<Item = (usize, Option<u64>)>,
) -> Result<Held, Refusal> {
    let mut held = Held::new();
    let mut seen: SmallVec<[usize; 8]> = SmallVec::new();
    let client = req.client_ip();
    for (i, capture) in applied {
        if seen.contains(&i) {
            continue;
        }
        seen.push(i);
        let Some(limit) = limits.get(i) else { continue };
        if limit.exempt.contains(client) {
            continue;
        }
        // A request without the key (no such header, cookie or
        // parameter) is not counted by this limit.
        let Some(h) = key::of(&limit.key, req, capture, &limit.hasher) else {
            continue;
        };
        let state = &limit.state;
        if let Decision::Limited { retry_after } = state.store.check(&limit.rate, h) {
            state.limited.fetch_add(1, Relaxed);
            return Err(Refusal::new(limit, retry_after));
        }
        if let Some(max) = limit.concurrent {
            match state.inflight.enter(h, max) {
                Admit::In(g) => held.push(g),
                Admit::Full => {
                    state.concurrent_refused.fetch_add(1, Relaxed);
                    return Err(Refusal::new(limit, Duration::from_secs(1)));
                }
                Admit::Untracked => {}
            }
        }
        state.allowed.fetch_add(1, Relaxed);
    }
    Ok(held)
}

/// A request head as hyper's path holds it, with the client's address.
pub struct Head<'a> {
    pub parts: &'a http::request::Parts,
    pub client: std::net::IpAddr,
}

impl RequestKeys for Head<'_> {
    #[inline]
    fn client_ip(&self) -> std::net::IpAddr {
        self.client
    }
    #[inline]
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.parts.headers.get(name).map(HeaderValue::as_bytes)
    }
    fn cookies(&self) -> impl Iterator<Item = &[u8]> {
        self.parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
    }
    #[inline]
    fn path(&self) -> &[u8] {
        self.parts.uri.path().as_bytes()
    }
    #[inline]
    fn query(&self) -> &[u8] {
        self.parts.uri.query().unwrap_or("").as_bytes()
    }
}
