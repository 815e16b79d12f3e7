//! The cache on the request path: between routing and forwarding. A
//! request of a farm with a cache is answered from the store when a fresh
//! response is there; otherwise it is forwarded (its response stored if it
//! may be), consolidated with concurrent misses of the same key,
//! revalidated when a stale entry has validators, or answered stale when
//! the farm cannot answer (`stale_if_error`). Requests the cache cannot
//! answer (other methods, upgrades) go straight to the fetch; a Range is
//! cut from the whole object (`range.rs`);
//! unsafe methods that succeed invalidate what is stored for their URL.
//!
//! The cache does not know how a response is fetched: the request stage
//! hands it a [`Fetch`] (the forwarder, resolved for this request).

use super::buffer::Buffer;
use super::conditional::{self, Conditions};
use super::consolidate::{self, Leader, Outcome, Role, Shared};
use super::entry::{self, Entry};
use super::fill::{self, Fill};
use super::invalidate;
use super::key;
use super::policy::{self, RequestPolicy, Timing};
use super::range;
use super::respond::{self, XCache};
use super::revalidate;
use super::stats::CacheResult;
use super::store::{Found, Lookup};
use super::variants::StoredResponse;
use super::FarmCache;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::{local_response, ProxyError};
use crate::proxy::exchange::Exchange;
use crate::proxy::forward::Outgoing;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};
use hyper::body::Body as _;
use hyper::upgrade::OnUpgrade;
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub type Answer = Result<Response<ProxyBody>, ProxyError>;

/// How the cache gets a response it does not have.
pub trait Fetch: Sync {
    /// A fetcher that owns what it needs, for a fetch that outlives the
    /// request (a stale-while-revalidate background revalidation).
    type Detached: Fetch + Send + 'static;

    fn fetch(
        &self,
        out: Outgoing,
        upgrade: Option<OnUpgrade>,
        ex: &mut Exchange,
    ) -> impl Future<Output = Answer> + Send;

    /// `None` when this fetcher cannot be detached.
    fn detach(&self) -> Option<Self::Detached>;
}

/// Serves a request through `cache` when its farm has one, else straight
/// through `fetch`. `may_encode`: the compression stage may send the
/// response encoded, so a hit offers it the stored body (`variants.rs`).
pub async fn serve<F: Fetch>(
    fetch: &F,
    cache: Option<&FarmCache>,
    may_encode: bool,
    out: Outgoing,
    upgrade: Option<OnUpgrade>,
    ex: &mut Exchange,
) -> Answer {
    let Some(cache) = cache else {
        return fetch.fetch(out, upgrade, ex).await;
    };
    let c = Ctx {
        fetch,
        cache,
        head_only: out.parts.method == Method::HEAD,
        may_encode,
        req: RequestPolicy::default(),
        cond: Conditions::default(),
        passing: false,
        background: false,
    };
    // Boxed: these futures are kilobytes, and an `async fn` moves its
    // callee's whole future into its own state, so unboxed they would
    // enlarge (and be copied through) every request's future, cached or not.
    if upgrade.is_some() || !cacheable_request(&out) {
        return Box::pin(c.bypass(out, upgrade, ex)).await;
    }
    let wanted = (out.parts.method == Method::GET)
        .then(|| range::Wanted::from_request(&out.parts.headers))
        .flatten();
    let answer = Box::pin(c.cached(out, ex)).await;
    match wanted {
        Some(w) => answer.map(|resp| range::answer(&w, resp)),
        None => answer,
    }
}

/// GET or HEAD, without a body or conditionals the cache does not answer
/// itself (ranges it answers: `range.rs`).
fn cacheable_request(out: &Outgoing) -> bool {
    let p = &out.parts;
    (p.method == Method::GET || p.method == Method::HEAD)
        && out.body.is_end_stream()
        && !p.headers.contains_key(header::IF_MATCH)
        && !p.headers.contains_key(header::IF_UNMODIFIED_SINCE)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

struct Ctx<'a, F> {
    fetch: &'a F,
    cache: &'a FarmCache,
    head_only: bool,
    /// Hits are offered to the compression stage.
    may_encode: bool,
    req: RequestPolicy,
    cond: Conditions,
    /// The URL is marked as not shareable (no need to mark it again).
    passing: bool,
    /// A background revalidation: nobody is answered, nothing is counted.
    background: bool,
}

impl<F: Fetch> Ctx<'_, F> {
    /// The one place the cache fetches.
    async fn forward(
        &self,
        out: Outgoing,
        upgrade: Option<OnUpgrade>,
        ex: &mut Exchange,
    ) -> Answer {
        self.fetch.fetch(out, upgrade, ex).await
    }

    /// Counts `result`, sets X-Cache and removes the targeted fields meant
    /// for this cache only.
    fn done(&self, result: CacheResult, x: XCache, mut resp: Response<ProxyBody>) -> Answer {
        self.count(result);
        respond::mark(&mut resp, self.cache.spec.status_header, x);
        for name in &self.cache.targeted.strip {
            resp.headers_mut().remove(name);
        }
        Ok(resp)
    }

    fn count(&self, result: CacheResult) {
        if !self.background {
            self.cache.store.stats.count(result);
        }
    }

    /// Lets the compression stage find (and keep) encoded forms of `e`
    /// when it may want one: the client accepts an encoding the farm or a
    /// rule compresses with. Others pay nothing for it.
    fn offer_variants(&self, resp: &mut Response<ProxyBody>, e: &Arc<Entry>, key: &[u8]) {
        if self.may_encode && resp.status() == StatusCode::OK && !self.head_only {
            let stored = StoredResponse::offer(e.clone(), self.cache.store.clone(), key);
            resp.extensions_mut().insert(stored);
        }
    }

    /// Serves `e` stale if it may stand in for a failing farm, else `fallback`.
    fn stale_or(
        &self,
        candidate: Option<&Arc<Entry>>,
        result: CacheResult,
        fallback: Answer,
    ) -> Answer {
        if let Some(e) = candidate.filter(|e| e.usable_on_error(&self.cache.spec)) {
            let resp = respond::from_entry(e, self.head_only, &self.cond);
            return self.done(CacheResult::Stale, XCache::Stale, resp);
        }
        match fallback {
            Ok(resp) => self.done(result, XCache::Miss, resp),
            Err(e) => {
                self.count(result);
                Err(e)
            }
        }
    }

    async fn bypass(&self, out: Outgoing, upgrade: Option<OnUpgrade>, ex: &mut Exchange) -> Answer {
        let unsafe_method = !out.parts.method.is_safe();
        let primary = unsafe_method.then(|| key::primary(&out.parts, self.cache.spec.query_string));
        let resp = self.forward(out, upgrade, ex).await?;
        if let Some(primary) = primary {
            invalidate::after_unsafe(self.cache, &primary, &resp);
        }
        self.done(CacheResult::Bypass, XCache::Bypass, resp)
    }

    async fn cached(mut self, mut out: Outgoing, ex: &mut Exchange) -> Answer {
        self.req = RequestPolicy::from_headers(&out.parts.headers);
        self.cond = Conditions::from_headers(&out.parts.headers);
        let store = &self.cache.store;
        let primary = key::primary(&out.parts, self.cache.spec.query_string);
        let mut lookup = store.lookup(primary, &out.parts.headers);
        let found = std::mem::replace(&mut lookup.found, Found::Nothing);
        if out.parts.headers.contains_key(header::RANGE) {
            if matches!(found, Found::Pass) {
                // Not storable last time (too large, private, ...): the
                // backend answers the range itself.
                let r = self.forward(out, None, ex).await;
                return self.after_plain(None, CacheResult::Miss, r);
            }
            // The cache fetches and keeps the whole object; the range is
            // cut from it on the way out.
            out.parts.headers.remove(header::RANGE);
            out.parts.headers.remove(header::IF_RANGE);
        }
        let (candidate, pass) = match found {
            Found::Entry(e) if e.fresh_for(&self.req) => {
                let mut resp = respond::from_entry(&e, self.head_only, &self.cond);
                self.offer_variants(&mut resp, &e, lookup.key());
                return self.done(CacheResult::Hit, XCache::Hit, resp);
            }
            Found::Entry(e) if out.parts.method == Method::GET && e.within_swr(&self.req) => {
                let mut resp = respond::from_entry(&e, false, &self.cond);
                self.offer_variants(&mut resp, &e, lookup.key());
                self.revalidate_in_background(e, lookup, out);
                return self.done(CacheResult::StaleRevalidate, XCache::Stale, resp);
            }
            Found::Entry(e) => (Some(e), false),
            Found::Pass => (None, true),
            Found::Nothing => (None, false),
        };
        if self.req.only_if_cached {
            let resp = local_response(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout: not cached\n",
            );
            return self.done(CacheResult::Miss, XCache::Miss, resp);
        }
        if self.head_only || self.req.no_store {
            // Nothing will be stored from this exchange.
            let r = self.forward(out, None, ex).await;
            return self.after_plain(candidate.as_ref(), CacheResult::Miss, r);
        }
        self.passing = pass;
        if pass || !self.cache.spec.request_consolidation {
            return self.lead(out, &lookup, candidate.as_ref(), None, ex).await;
        }
        loop {
            match consolidate::join(&self.cache.store.inflight, lookup.key()) {
                Role::Lead(leader) => {
                    return self
                        .lead(out, &lookup, candidate.as_ref(), Some(leader), ex)
                        .await
                }
                Role::Follow(rx) => {
                    if let Some(outcome) = consolidate::follow(rx).await {
                        return self.follow(outcome, out, candidate.as_ref(), ex).await;
                    }
                    // The leader went away before its answer: race to lead.
                }
            }
        }
    }

    /// Starts one revalidation of `e` that runs on its own, unless one for
    /// its key is already in flight (consolidated whatever the number of
    /// stale hits) or the fetcher cannot be detached.
    fn revalidate_in_background(&self, e: Arc<Entry>, lookup: Lookup, out: Outgoing) {
        let Some(fetch) = self.fetch.detach() else {
            return;
        };
        let Role::Lead(leader) = consolidate::join(&self.cache.store.inflight, lookup.key()) else {
            return;
        };
        self.cache
            .store
            .stats
            .background
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cache = self.cache.clone();
        let req = self.req.clone();
        tokio::spawn(async move {
            let ctx = Ctx {
                fetch: &fetch,
                cache: &cache,
                head_only: false,
                may_encode: false,
                req,
                cond: Conditions::default(),
                passing: false,
                background: true,
            };
            let mut ex = Exchange::new(Instant::now());
            // The answer is nobody's: the fill task stores the body on its own.
            let _ = ctx
                .lead(out, &lookup, Some(&e), Some(leader), &mut ex)
                .await;
        });
    }

    /// A forwarded answer that nothing is stored from.
    fn after_plain(
        &self,
        candidate: Option<&Arc<Entry>>,
        result: CacheResult,
        r: Answer,
    ) -> Answer {
        match r {
            Ok(resp) if resp.status().is_server_error() => {
                self.stale_or(candidate, result, Ok(resp))
            }
            Ok(resp) => self.done(result, XCache::Miss, resp),
            Err(e) => self.stale_or(candidate, result, Err(e)),
        }
    }

    /// Fetches from the farm for this key (validating `candidate` if it has
    /// validators), stores what may be stored, and tells the followers.
    async fn lead(
        &self,
        mut out: Outgoing,
        lookup: &Lookup,
        candidate: Option<&Arc<Entry>>,
        leader: Option<Leader>,
        ex: &mut Exchange,
    ) -> Answer {
        let spec = &self.cache.spec;
        conditional::strip(&mut out.parts.headers);
        let request_headers = out.parts.headers.clone();
        let validating = candidate.filter(|e| e.has_validator());
        if let Some(e) = validating {
            revalidate::add_validators(&mut out.parts.headers, e);
        }
        let request_time = SystemTime::now();
        let result = self.forward(out, None, ex).await;
        let timing = Timing {
            request_time,
            response_time: SystemTime::now(),
        };
        let received = Instant::now();
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(l) = &leader {
                    l.publish(Outcome::Failed(e));
                }
                return self.stale_or(candidate, CacheResult::Miss, Err(e));
            }
        };
        let status = resp.status();

        if let (StatusCode::NOT_MODIFIED, Some(e)) = (status, validating) {
            let refreshed = revalidate::refresh(
                e,
                resp.headers(),
                &self.req,
                timing,
                received,
                spec,
                &self.cache.targeted.names,
            );
            let serve = match refreshed {
                Some(new) => {
                    self.cache.store.replace(lookup.key(), new.clone());
                    if let Some(l) = &leader {
                        l.publish(Outcome::Refreshed(new.clone()));
                    }
                    new
                }
                None => {
                    self.cache.store.invalidate(lookup.key());
                    if let Some(l) = &leader {
                        l.publish(Outcome::Own);
                    }
                    e.clone()
                }
            };
            let resp = respond::from_entry(&serve, false, &self.cond);
            return self.done(CacheResult::Revalidated, XCache::Hit, resp);
        }

        let cc = self.cache.response_control(resp.headers());
        let verdict = policy::evaluate(spec, &self.req, status, resp.headers(), &cc, timing);
        let fits = content_length(resp.headers()).is_none_or(|n| n <= spec.max_object_size);
        let (parts, body) = resp.into_parts();
        let vary = key::vary_names(&parts.headers);
        let mut vary_values = Vec::new();
        key::vary_values(&vary, &request_headers, &mut vary_values);

        // An error with explicit freshness is stored, unless a stale entry
        // may stand in for it (stale-if-error): that one is served and kept.
        let stale_wins =
            status.is_server_error() && candidate.is_some_and(|e| e.usable_on_error(spec));
        let storable = match verdict {
            Ok(freshness) if fits && !stale_wins => Some(freshness),
            _ => None,
        };
        let share_error = status.is_server_error()
            && leader.is_some()
            && !cc.private
            && !cc.no_store
            && !parts.headers.contains_key(header::SET_COOKIE);

        let body = if storable.is_some() || share_error {
            let buf = Buffer::new(storable.is_some(), spec.max_object_size);
            let shared_head = entry::shareable_head(&parts.headers);
            let fill = storable.map(|freshness| Fill {
                store: self.cache.store.clone(),
                spec: *spec,
                primary: lookup.primary.clone(),
                vary: vary.clone(),
                vary_values: vary_values.clone(),
                status,
                headers: shared_head.clone(),
                freshness,
                received,
            });
            if let Some(l) = &leader {
                l.publish(Outcome::Shared(Arc::new(Shared {
                    status,
                    headers: shared_head,
                    vary,
                    vary_values,
                    body: buf.clone(),
                })));
            }
            let mine = buf.attach();
            fill::spawn(body, buf, fill, leader);
            match mine {
                Some(reader) => ProxyBody::boxed(http_body_util::BodyExt::boxed_unsync(reader)),
                None => ProxyBody::empty(),
            }
        } else {
            if !status.is_server_error() && !self.passing {
                // Let the next requests for this URL go straight through.
                self.cache.store.mark_pass(&lookup.primary);
            } else if let Some(key) = &lookup.variant {
                self.cache.store.invalidate(key);
            }
            if let Some(l) = &leader {
                l.publish(Outcome::Own);
            }
            drop(leader);
            body
        };

        if status.is_server_error() {
            if let Some(e) = candidate.filter(|e| e.usable_on_error(spec)) {
                let resp = respond::from_entry(e, false, &self.cond);
                return self.done(CacheResult::Stale, XCache::Stale, resp);
            }
        }
        if status == StatusCode::OK && self.cond.not_modified_by(&parts.headers) {
            return self.done(
                CacheResult::Miss,
                XCache::Miss,
                respond::not_modified(&parts.headers),
            );
        }
        self.done(
            CacheResult::Miss,
            XCache::Miss,
            Response::from_parts(parts, body),
        )
    }

    /// Serves a follower from its leader's outcome.
    async fn follow(
        &self,
        outcome: Outcome,
        out: Outgoing,
        candidate: Option<&Arc<Entry>>,
        ex: &mut Exchange,
    ) -> Answer {
        match outcome {
            Outcome::Shared(sh) => {
                let same_variant = sh.vary.is_empty() || {
                    let mut mine = Vec::new();
                    key::vary_values(&sh.vary, &out.parts.headers, &mut mine);
                    mine == sh.vary_values
                };
                if same_variant {
                    if let Some(resp) = self.shared_answer(&sh, candidate) {
                        return resp;
                    }
                }
                let r = self.forward(out, None, ex).await;
                self.after_plain(candidate, CacheResult::Miss, r)
            }
            Outcome::Refreshed(e) => {
                let resp = respond::from_entry(&e, false, &self.cond);
                self.done(CacheResult::Consolidated, XCache::Hit, resp)
            }
            Outcome::Own | Outcome::Pending => {
                let r = self.forward(out, None, ex).await;
                self.after_plain(candidate, CacheResult::Miss, r)
            }
            Outcome::Failed(e) => self.stale_or(candidate, CacheResult::Consolidated, Err(e)),
        }
    }

    /// The leader's response as this follower gets it, or `None` when its
    /// start is gone (the follower then fetches for itself).
    fn shared_answer(&self, sh: &Shared, candidate: Option<&Arc<Entry>>) -> Option<Answer> {
        if sh.status.is_server_error() {
            if let Some(e) = candidate.filter(|e| e.usable_on_error(&self.cache.spec)) {
                let resp = respond::from_entry(e, false, &self.cond);
                return Some(self.done(CacheResult::Stale, XCache::Stale, resp));
            }
        }
        if sh.status == StatusCode::OK && self.cond.not_modified_by(&sh.headers) {
            let resp = respond::not_modified(&sh.headers);
            return Some(self.done(CacheResult::Consolidated, XCache::Hit, resp));
        }
        let reader = sh.body.attach()?;
        let mut resp = Response::new(ProxyBody::boxed(http_body_util::BodyExt::boxed_unsync(
            reader,
        )));
        *resp.status_mut() = sh.status;
        *resp.headers_mut() = sh.headers.clone();
        let x = if sh.status.is_server_error() {
            XCache::Miss
        } else {
            XCache::Hit
        };
        Some(self.done(CacheResult::Consolidated, x, resp))
    }
}
