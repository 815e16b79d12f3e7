//! URL rewrite rules: which farm serves a request and what path it sees,
//! in the manner of IIS URL Rewrite in front of ARR.
//!
//! Rules are compiled when the config is built (`compile.rs`: regexes
//! built, templates parsed, farms and header names resolved) into a
//! [`RuleSet`]. Per request, [`RuleSet::evaluate`] normalises the path
//! (`normalize.rs`), walks the rules in order and returns a [`Decision`]:
//! route, redirect, respond, abort or bad request, plus request headers to
//! set. Evaluating compiles nothing; one scan of the path finds which
//! rules' patterns match (`prefilter.rs`), a rule that does not match costs
//! nothing more, and only the output of the deciding rules (rewritten URL,
//! header values, captures they use) is allocated.

pub mod action;
pub mod compile;
pub mod condition;
pub mod maps;
pub mod normalize;
pub mod pattern;
pub mod prefilter;
pub mod raw;
pub mod template;
pub mod variables;

pub use action::Outcome;
pub use compile::compile;
pub use variables::RequestView;

use action::Action;
use condition::Conditions;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use pattern::{Captures, Pattern};
use std::borrow::Cow;
use std::sync::Arc;
use template::{Ctx, Template};

/// The compiled rule list of a snapshot.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    prefilter: prefilter::Prefilter,
    /// The rewrite maps the rules' templates look up.
    maps: maps::Maps,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pattern: Pattern,
    conditions: Conditions,
    set_headers: Box<[(HeaderName, Template)]>,
    action: Action,
    stop: bool,
    /// Some template uses `{R:n}`: captures are taken when the rule matches.
    needs_r: bool,
    /// Some template uses `{C:n}`.
    needs_c: bool,
    /// The rule has a `compression` section (compiled beside the rule set,
    /// by the layer that owns it: `compress::RuleSpecs`).
    compression: bool,
    /// IP allow and deny lists for the clients of matching requests.
    access: Option<crate::limits::AccessList>,
}

/// A limit a matching rule applies: its index in the snapshot's limits
/// and, when it counts by `{R:n}`, the hash of that capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit {
    pub limit: usize,
    pub capture: Option<u64>,
}

/// What the rules decided for one request.
#[derive(Debug)]
pub struct Decision {
    pub outcome: Outcome,
    /// Request headers to set before forwarding, in rule order; an empty
    /// value removes the header.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// The index of the last rule that matched, if any.
    pub rule: Option<usize>,
    /// The index of the last matching rule with a `compression` section.
    pub compression: Option<usize>,
    /// The limits matching rules apply, in rule order (inline: no
    /// allocation for up to four).
    pub limits: smallvec::SmallVec<[LimitHit; 4]>,
}

impl RuleSet {
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
    /// The rewrite maps, by name.
    pub fn maps(&self) -> &maps::Maps {
        &self.maps
    }
    /// The name of rule `i` (for logs).
    pub fn name(&self, i: usize) -> Option<&Arc<str>> {
        self.rules.get(i).map(|r| &r.name)
    }

    /// Runs the rules over a request.
    pub fn evaluate(&self, req: &RequestView<'_>) -> Decision {
        let mut d = Decision {
            outcome: Outcome::Route {
                farm: None,
                url: None,
            },
            set_headers: Vec::new(),
            rule: None,
            compression: None,
            limits: smallvec::SmallVec::new(),
        };
        let Ok(mut path) = normalize::normalize(req.uri.path()) else {
            d.outcome = Outcome::BadRequest;
            return d;
        };
        // A route that does not stop processing sets these; later rules
        // match the rewritten path, as in IIS.
        let mut farm: Option<usize> = None;
        let mut url: Option<PathAndQuery> = None;
        let mut scratch = Vec::new();
        let mut c_hay = Vec::new();
        let mut candidates = self.prefilter.candidates(path.as_bytes());
        for (i, rule) in self.rules.iter().enumerate() {
            let current: &str = &path;
            let matched = match candidates.get(i) {
                Some(m) => m != rule.pattern.is_negated(),
                None => rule.pattern.is_match(current.as_bytes()),
            };
            debug_assert_eq!(matched, rule.pattern.is_match(current.as_bytes()));
            if !matched {
                continue;
            }
            let r = if rule.needs_r {
                rule.pattern.captures(current.as_bytes())
            } else {
                Captures::NONE
            };
            let no_c = Captures::NONE;
            let ctx = Ctx {
                req,
                url: current,
                r: &r,
                c: &no_c,
            };
            let Some(decider) = rule.conditions.check(&ctx, &mut scratch) else {
                continue;
            };
            let c = match decider {
                Some(ci) if rule.needs_c => rule.conditions.captures(ci, &ctx, &mut c_hay),
                _ => Captures::NONE,
            };
            let ctx = Ctx { c: &c, ..ctx };
            if let Some(access) = &rule.access {
                // Unknown client: an allow list refuses, a deny list passes.
                let permitted = match req.client {
                    Some(ip) => access.permits(ip),
                    None => access.permits_unknown(),
                };
                if !permitted {
                    d.rule = Some(i);
                    d.outcome = Outcome::Forbidden;
                    return d;
                }
            }
            d.rule = Some(i);
            if rule.compression {
                d.compression = Some(i);
            }
            for (name, t) in rule.set_headers.iter() {
                if let Some(v) = action::render_header(t, &ctx) {
                    upsert(&mut d.set_headers, name, v);
                }
            }
            match &rule.action {
                Action::Route {
                    farm: to,
                    url: t,
                    append_query,
                } => {
                    farm = to.or(farm);
                    if let Some(t) = t {
                        let bytes = action::render_url(t, &ctx, *append_query, true);
                        match PathAndQuery::from_maybe_shared(bytes::Bytes::from(bytes)) {
                            Ok(pq) => url = Some(pq),
                            Err(_) => {
                                d.outcome = Outcome::BadRequest;
                                return d;
                            }
                        }
                    }
                    if rule.stop {
                        break;
                    }
                    if let Some(pq) = url.as_ref().filter(|_| t.is_some()) {
                        let next = pq.path().to_owned();
                        path = Cow::Owned(next);
                        candidates = self.prefilter.candidates(path.as_bytes());
                    }
                }
                Action::Redirect {
                    url: t,
                    status,
                    append_query,
                } => {
                    let bytes = action::render_url(t, &ctx, *append_query, false);
                    d.outcome = match HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)) {
                        Ok(location) => Outcome::Redirect {
                            status: *status,
                            location,
                        },
                        Err(_) => Outcome::BadRequest,
                    };
                    return d;
                }
                Action::Respond {
                    status,
                    body,
                    headers,
                } => {
                    let mut out = Vec::with_capacity(headers.len());
                    for (name, t) in headers.iter() {
                        if let Some(v) = action::render_header(t, &ctx) {
                            out.push((name.clone(), v));
                        }
                    }
                    d.outcome = Outcome::Respond {
                        status: *status,
                        headers: out,
                        body: action::render_body(body, &ctx),
                    };
                    return d;
                }
                Action::Limit {
                    limit,
                    capture,
                    hasher,
                } => {
                    d.limits.push(LimitHit {
                        limit: *limit,
                        capture: capture.map(|n| hasher.hash(r.get(n))),
                    });
                    if rule.stop {
                        break;
                    }
                }
                Action::Abort => {
                    d.outcome = Outcome::Abort;
                    return d;
                }
                Action::None => {
                    if rule.stop {
                        break;
                    }
                }
            }
        }
        d.outcome = Outcome::Route { farm, url };
        d
    }
}

/// Sets `name` in the pending header list; a later rule's value wins.
fn upsert(list: &mut Vec<(HeaderName, HeaderValue)>, name: &HeaderName, v: HeaderValue) {
    match list.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = v,
        None => list.push((name.clone(), v)),
    }
}
