//! RFC 9111 as a shared cache applies it: may this response be stored
//! (§3, §3.5), how long is it fresh (§4.2.1, heuristics §4.2.2), how old is
//! it (§4.2.3), and may a stored response answer this request (§4.2,
//! request directives §5.2.1) or, stale, stand in for a failing farm.

use super::config::CacheSpec;
use super::control::{self, CacheControl};
use super::key;
use http::header::{self, HeaderMap};
use http::StatusCode;
use std::time::{Duration, SystemTime};

/// Statuses that may be stored without explicit freshness (RFC 9110
/// §15.1 "heuristically cacheable").
const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// What a request asks of the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPolicy {
    /// `no-cache` (or `Pragma: no-cache`): a stored response must be
    /// validated with the backend first.
    pub no_cache: bool,
    /// `no-store`: nothing of this exchange may be stored.
    pub no_store: bool,
    pub max_age: Option<Duration>,
    pub min_fresh: Option<Duration>,
    pub only_if_cached: bool,
    /// The request carries Authorization (§3.5).
    pub authorization: bool,
}

impl RequestPolicy {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let cc = CacheControl::from_headers(headers);
        RequestPolicy {
            no_cache: cc.no_cache || control::pragma_no_cache(headers),
            no_store: cc.no_store,
            max_age: cc.max_age,
            min_fresh: cc.min_fresh,
            only_if_cached: cc.only_if_cached,
            authorization: headers.contains_key(header::AUTHORIZATION),
        }
    }
}

/// When the backend exchange that produced a response started and ended.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

/// How long a stored response stays fresh and how it may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime (§4.2.1).
    pub lifetime: Duration,
    /// Corrected initial age (§4.2.3) when it was received.
    pub initial_age: Duration,
    /// Response `no-cache`: every reuse needs a successful validation.
    pub revalidate_always: bool,
    /// must-revalidate, proxy-revalidate or s-maxage: never served stale,
    /// not even on error (§4.2.4).
    pub no_stale: bool,
    /// How long past its freshness it may be served at once while one
    /// background request revalidates it (RFC 5861: the response's
    /// `stale-while-revalidate`, else the farm's default).
    pub stale_while_revalidate: Duration,
    /// The response's own `stale-if-error` window (RFC 5861), which
    /// replaces the farm's `stale_if_error` for it.
    pub stale_if_error: Option<Duration>,
}

impl Freshness {
    /// May a stored response of age `age` answer `req` without validation?
    pub fn fresh_for(&self, age: Duration, req: &RequestPolicy) -> bool {
        if self.revalidate_always || req.no_cache {
            return false;
        }
        if req.max_age.is_some_and(|max| age > max) {
            return false;
        }
        let left = self.lifetime.saturating_sub(age);
        if req.min_fresh.is_some_and(|min| left < min) {
            return false;
        }
        self.lifetime > age
    }

    /// May it stand in, stale, for a farm that cannot answer? `window`:
    /// the farm's `stale_if_error`, unless the response gave its own.
    pub fn usable_on_error(&self, age: Duration, window: Duration) -> bool {
        let window = self.stale_if_error.unwrap_or(window);
        !self.no_stale
            && !self.revalidate_always
            && !window.is_zero()
            && age.saturating_sub(self.lifetime) <= window
    }

    /// Stale, but within its stale-while-revalidate window: serve it now
    /// and revalidate in the background.
    pub fn within_swr(&self, age: Duration, req: &RequestPolicy) -> bool {
        !self.no_stale
            && !self.revalidate_always
            && !req.no_cache
            && req.max_age.is_none()
            && req.min_fresh.is_none()
            && age >= self.lifetime
            && age - self.lifetime < self.stale_while_revalidate
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStorable {
    #[error("status is not cacheable")]
    Status,
    #[error("no-store")]
    NoStore,
    #[error("private")]
    Private,
    #[error("Set-Cookie without public")]
    SetCookie,
    #[error("request had Authorization and the response does not allow sharing")]
    Authorization,
    #[error("Vary: *")]
    VaryAll,
    #[error("neither freshness nor a validator")]
    NotReusable,
}

/// Decides whether a response to a GET may be stored, and if so how fresh
/// it is. `cc` is the response's parsed Cache-Control.
pub fn evaluate(
    spec: &CacheSpec,
    req: &RequestPolicy,
    status: StatusCode,
    headers: &HeaderMap,
    cc: &CacheControl,
    timing: Timing,
) -> Result<Freshness, NotStorable> {
    let code = status.as_u16();
    // Any final status may be stored with explicit freshness, errors and
    // unknown codes included (RFC 9111 §3); a partial response is never
    // stored as if it were the whole object, a 304 is not a response body.
    if code < 200 || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    if cc.no_store || req.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    if key::vary_is_star(headers) {
        return Err(NotStorable::VaryAll);
    }
    if headers.contains_key(header::SET_COOKIE) && !cc.public {
        return Err(NotStorable::SetCookie);
    }
    if req.authorization && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some()) {
        return Err(NotStorable::Authorization);
    }
    let date = control::date(headers, header::DATE).unwrap_or(timing.response_time);
    let explicit = cc.s_maxage.or(cc.max_age).or_else(|| {
        control::expires(headers).map(|exp| exp.duration_since(date).unwrap_or_default())
    });
    if explicit.is_none() && !HEURISTIC_STATUSES.contains(&code) {
        return Err(NotStorable::Status);
    }
    let last_modified = control::date(headers, header::LAST_MODIFIED);
    let lifetime = match explicit {
        Some(l) => l,
        None if !spec.default_ttl.is_zero() => spec.default_ttl,
        None => last_modified
            .and_then(|lm| date.duration_since(lm).ok())
            .map_or(Duration::ZERO, |since| {
                (since / 10).min(spec.max_heuristic_ttl)
            }),
    };
    let initial_age = initial_age(headers, date, timing);
    let freshness = Freshness {
        lifetime,
        initial_age,
        revalidate_always: cc.no_cache,
        no_stale: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        stale_while_revalidate: cc
            .stale_while_revalidate
            .unwrap_or(spec.stale_while_revalidate),
        stale_if_error: cc.stale_if_error,
    };
    let has_validator =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let reusable_unvalidated = !freshness.revalidate_always && lifetime > initial_age;
    if !reusable_unvalidated && !has_validator {
        return Err(NotStorable::NotReusable);
    }
    Ok(freshness)
}

/// The corrected initial age of §4.2.3.
fn initial_age(headers: &HeaderMap, date: SystemTime, t: Timing) -> Duration {
    let apparent = t.response_time.duration_since(date).unwrap_or_default();
    let delay = t
        .response_time
        .duration_since(t.request_time)
        .unwrap_or_default();
    let corrected = control::age(headers) + delay;
    apparent.max(corrected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn now() -> Timing {
        let t = SystemTime::now();
        Timing {
            request_time: t,
            response_time: t,
        }
    }

    fn eval_with(
        spec: &CacheSpec,
        req: &RequestPolicy,
        status: u16,
        hs: &[(&'static str, &str)],
    ) -> Result<Freshness, NotStorable> {
        let mut h = HeaderMap::new();
        for (k, v) in hs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let cc = CacheControl::from_headers(&h);
        evaluate(
            spec,
            req,
            StatusCode::from_u16(status).unwrap(),
            &h,
            &cc,
            now(),
        )
    }

    fn eval(status: u16, hs: &[(&'static str, &str)]) -> Result<Freshness, NotStorable> {
        eval_with(&CacheSpec::default(), &RequestPolicy::default(), status, hs)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn max_age_and_s_maxage() {
        let f = eval(200, &[("cache-control", "max-age=60")]).unwrap();
        assert_eq!(f.lifetime, secs(60));
        assert!(!f.no_stale);
        let f = eval(200, &[("cache-control", "max-age=60, s-maxage=5")]).unwrap();
        assert_eq!(f.lifetime, secs(5), "s-maxage wins for a shared cache");
        assert!(f.no_stale, "s-maxage implies proxy-revalidate");
    }

    #[test]
    fn expires_relative_to_date() {
        let date = SystemTime::now();
        let exp = date + secs(120);
        let f = eval(
            200,
            &[
                ("date", &httpdate::fmt_http_date(date)),
                ("expires", &httpdate::fmt_http_date(exp)),
            ],
        )
        .unwrap();
        assert!(f.lifetime >= secs(119) && f.lifetime <= secs(120));
        // max-age beats Expires.
        let f = eval(
            200,
            &[
                ("expires", &httpdate::fmt_http_date(exp)),
                ("cache-control", "max-age=3"),
            ],
        )
        .unwrap();
        assert_eq!(f.lifetime, secs(3));
        // An invalid Expires is in the past: nothing reusable.
        assert_eq!(
            eval(200, &[("expires", "0")]),
            Err(NotStorable::NotReusable)
        );
    }

    #[test]
    fn what_is_never_stored() {
        type Case = (u16, &'static [(&'static str, &'static str)], NotStorable);
        let cases: [Case; 7] = [
            (
                200,
                &[("cache-control", "private, max-age=60")],
                NotStorable::Private,
            ),
            (
                200,
                &[("cache-control", "no-store, max-age=60")],
                NotStorable::NoStore,
            ),
            (
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
                NotStorable::SetCookie,
            ),
            (
                200,
                &[("cache-control", "max-age=60"), ("vary", "accept, *")],
                NotStorable::VaryAll,
            ),
            (206, &[("cache-control", "max-age=60")], NotStorable::Status),
            (503, &[], NotStorable::Status),
            (200, &[], NotStorable::NotReusable),
        ];
        for (status, hs, why) in cases {
            assert_eq!(eval(status, hs), Err(why), "{status} {hs:?}");
        }
        // A 302 needs explicit freshness; a 404 may use the heuristic.
        assert_eq!(eval(302, &[("etag", "\"x\"")]), Err(NotStorable::Status));
        assert!(eval(302, &[("cache-control", "max-age=5")]).is_ok());
        assert!(eval(404, &[("etag", "\"x\"")]).is_ok());
    }

    #[test]
    fn errors_and_unknown_statuses_need_explicit_freshness() {
        for code in [500, 502, 503, 504, 599] {
            let f = eval(code, &[("cache-control", "max-age=100")]).expect("explicit");
            assert_eq!(f.lifetime, secs(100), "{code}");
            assert_eq!(eval(code, &[("etag", "\"x\"")]), Err(NotStorable::Status));
        }
        assert!(eval(
            503,
            &[(
                "expires",
                &httpdate::fmt_http_date(SystemTime::now() + secs(60))
            )]
        )
        .is_ok());
        // 501 is heuristically cacheable (RFC 9110 §15.1).
        assert!(eval(501, &[("etag", "\"x\"")]).is_ok());
    }

    #[test]
    fn stale_while_revalidate_windows() {
        let f = eval(
            200,
            &[("cache-control", "max-age=10, stale-while-revalidate=20")],
        )
        .unwrap();
        let req = RequestPolicy::default();
        assert!(!f.within_swr(secs(5), &req), "still fresh");
        assert!(f.within_swr(secs(15), &req));
        assert!(!f.within_swr(secs(31), &req), "past the window");
        let nc = RequestPolicy {
            no_cache: true,
            ..Default::default()
        };
        assert!(
            !f.within_swr(secs(15), &nc),
            "the client wants a validated answer"
        );
        let f = eval(
            200,
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=20, must-revalidate",
            )],
        )
        .unwrap();
        assert!(
            !f.within_swr(secs(15), &req),
            "must-revalidate forbids stale"
        );
        let spec = CacheSpec {
            stale_while_revalidate: secs(5),
            ..Default::default()
        };
        let f = eval_with(&spec, &req, 200, &[("cache-control", "max-age=10")]).unwrap();
        assert!(f.within_swr(secs(12), &req), "the farm's default");
        let f = eval(200, &[("cache-control", "max-age=10")]).unwrap();
        assert!(!f.within_swr(secs(12), &req), "off by default");
    }

    #[test]
    fn the_response_stale_if_error_replaces_the_farms() {
        let f = eval(200, &[("cache-control", "max-age=10, stale-if-error=100")]).unwrap();
        assert!(f.usable_on_error(secs(90), secs(5)));
        assert!(!f.usable_on_error(secs(120), secs(500)));
    }

    #[test]
    fn set_cookie_with_public_is_stored() {
        assert!(eval(
            200,
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=1")
            ]
        )
        .is_ok());
    }

    #[test]
    fn authorization_needs_the_response_to_allow_sharing() {
        let req = RequestPolicy {
            authorization: true,
            ..Default::default()
        };
        let spec = CacheSpec::default();
        let with = |cc: &str| eval_with(&spec, &req, 200, &[("cache-control", cc)]);
        assert_eq!(with("max-age=60"), Err(NotStorable::Authorization));
        assert!(with("public, max-age=60").is_ok());
        assert!(with("s-maxage=60").is_ok());
        assert!(with("max-age=60, must-revalidate").is_ok());
    }

    #[test]
    fn request_no_store_stores_nothing() {
        let req = RequestPolicy {
            no_store: true,
            ..Default::default()
        };
        let r = eval_with(
            &CacheSpec::default(),
            &req,
            200,
            &[("cache-control", "max-age=60")],
        );
        assert_eq!(r, Err(NotStorable::NoStore));
    }

    #[test]
    fn heuristic_and_default_ttl() {
        let date = SystemTime::now();
        let lm = date - secs(1000);
        let hs = [
            ("date", httpdate::fmt_http_date(date)),
            ("last-modified", httpdate::fmt_http_date(lm)),
        ];
        let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(eval(200, &hs).unwrap().lifetime, secs(100), "10%");
        let old = date - secs(100 * 86400);
        let hs2 = [("last-modified", httpdate::fmt_http_date(old))];
        let hs2: Vec<(&str, &str)> = hs2.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(eval(200, &hs2).unwrap().lifetime, secs(3600), "capped");
        let spec = CacheSpec {
            default_ttl: secs(60),
            ..Default::default()
        };
        let f = eval_with(&spec, &RequestPolicy::default(), 200, &[]).unwrap();
        assert_eq!(f.lifetime, secs(60), "default_ttl for a bare 200");
        let f = eval_with(
            &spec,
            &RequestPolicy::default(),
            200,
            &[("cache-control", "max-age=5")],
        )
        .unwrap();
        assert_eq!(f.lifetime, secs(5), "explicit freshness beats default_ttl");
    }

    #[test]
    fn no_cache_with_validator_is_stored_for_revalidation() {
        let f = eval(200, &[("cache-control", "no-cache"), ("etag", "\"v1\"")]).unwrap();
        assert!(f.revalidate_always);
        assert!(!f.fresh_for(Duration::ZERO, &RequestPolicy::default()));
        assert_eq!(
            eval(200, &[("cache-control", "no-cache, max-age=60")]),
            Err(NotStorable::NotReusable)
        );
    }

    #[test]
    fn age_counts_against_freshness() {
        let f = eval(200, &[("cache-control", "max-age=60"), ("age", "50")]).unwrap();
        assert!(f.initial_age >= secs(50));
        assert!(f.fresh_for(f.initial_age, &RequestPolicy::default()));
        assert!(!f.fresh_for(secs(61), &RequestPolicy::default()));
    }

    #[test]
    fn request_directives_narrow_freshness() {
        let f = eval(200, &[("cache-control", "max-age=60")]).unwrap();
        let age = secs(30);
        let req = |s: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("cache-control", HeaderValue::from_static(s));
            RequestPolicy::from_headers(&h)
        };
        assert!(f.fresh_for(age, &req("max-age=40")));
        assert!(!f.fresh_for(age, &req("max-age=20")));
        assert!(!f.fresh_for(age, &req("min-fresh=40")));
        assert!(!f.fresh_for(age, &req("no-cache")));
        let mut h = HeaderMap::new();
        h.insert("pragma", HeaderValue::from_static("no-cache"));
        assert!(RequestPolicy::from_headers(&h).no_cache);
    }

    #[test]
    fn stale_on_error_window() {
        let f = eval(200, &[("cache-control", "max-age=10")]).unwrap();
        assert!(f.usable_on_error(secs(15), secs(10)));
        assert!(!f.usable_on_error(secs(25), secs(10)));
        assert!(!f.usable_on_error(secs(15), Duration::ZERO));
        let f = eval(200, &[("cache-control", "max-age=10, must-revalidate")]).unwrap();
        assert!(!f.usable_on_error(secs(11), secs(60)));
    }
}
