//! Compiles the `rules:` section ([`super::raw`]) into a
//! [`RuleSet`]: regexes built, templates parsed, farms resolved to indexes,
//! header names checked. Every problem is reported with its key path
//! (`rules[2].match`, `rules[0].action.route.farm`) so `farmgate check`
//! places it in the file.

use super::action::Action;
use super::condition::{Condition, ConditionMatch, Conditions};
use super::maps::Maps;
use super::pattern::Pattern;
use super::prefilter::Prefilter;
use super::raw::*;
use super::template::{url_safe, Template};
use super::{Rule, RuleSet};
use crate::ground::error::Problems;
use crate::limits::{LimitKey, Limits};
use http::header::{self, HeaderName};
use http::StatusCode;
use std::collections::HashSet;

/// Request headers a rule may not set: connection management belongs to
/// the proxy, and a wrong length would corrupt the forwarded message.
const UNSETTABLE: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Compiles the rules; `farms` and `limits` resolve the names actions
/// use, `maps` the rewrite maps templates look up.
pub fn compile<C>(
    raw: &[RawRule<C>],
    maps: Maps,
    farms: &[&str],
    limits: &Limits,
    p: &mut Problems,
) -> RuleSet {
    let mut names = HashSet::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = format!("rules[{i}]");
        let name = r.name.clone().unwrap_or_else(|| at.clone());
        if !names.insert(name.clone()) {
            p.add(
                format!("{at}.name"),
                format!("duplicate rule name {name:?}"),
            );
        }
        if let Some(rule) = compile_rule(r, name, &at, &maps, farms, limits, p) {
            rules.push(rule);
        }
    }
    let sources: Vec<(&str, bool)> = rules.iter().map(|r| r.pattern.source()).collect();
    let prefilter = Prefilter::build(&sources);
    RuleSet {
        rules,
        prefilter,
        maps,
    }
}

/// The back-references each template of a rule uses (highest `{R:n}`,
/// highest `{C:n}`), by key path, for the checks once all is compiled.
#[derive(Default)]
struct Refs(Vec<(String, Option<usize>, Option<usize>)>);

impl Refs {
    fn add(&mut self, at: String, t: &Template) {
        self.0.push((at, t.max_rule_ref(), t.max_cond_ref()));
    }
}

fn compile_rule<C>(
    r: &RawRule<C>,
    name: String,
    at: &str,
    maps: &Maps,
    farms: &[&str],
    limits: &Limits,
    p: &mut Problems,
) -> Option<Rule> {
    let before = p.0.len();
    let m = &r.matches;
    let pattern = Pattern::compile(&m.pattern, m.ignore_case.unwrap_or(true), m.negate)
        .map_err(|e| p.add(format!("{at}.match"), e))
        .ok();

    let mut refs = Refs::default();
    let mut conditions = Vec::with_capacity(r.conditions.len());
    for (j, c) in r.conditions.iter().enumerate() {
        let cat = format!("{at}.conditions[{j}]");
        let input = template(&c.input, &format!("{cat}.input"), maps, p);
        if let Some(t) = &input {
            if t.max_cond_ref().is_some() {
                p.add(
                    format!("{cat}.input"),
                    "a condition input cannot use {C:n}; back-references to conditions \
                     belong in the action and set_headers",
                );
            }
            refs.add(format!("{cat}.input"), t);
        }
        let pattern = Pattern::compile(&c.pattern, c.ignore_case.unwrap_or(true), c.negate)
            .map_err(|e| p.add(format!("{cat}.pattern"), e))
            .ok();
        if let (Some(input), Some(pattern)) = (input, pattern) {
            conditions.push(Condition { input, pattern });
        }
    }
    let mode = match r.condition_match {
        RawConditionMatch::All => ConditionMatch::All,
        RawConditionMatch::Any => ConditionMatch::Any,
    };
    let conditions = Conditions::new(conditions, mode);

    let mut set_headers = Vec::with_capacity(r.set_headers.0.len());
    for (k, v) in &r.set_headers.0 {
        let hat = format!("{at}.set_headers.{k}");
        if let Some(pair) = header_entry(k, v, &hat, &UNSETTABLE, maps, p) {
            set_headers.push(pair);
        }
    }
    let action = compile_action(&r.action, at, maps, farms, limits, p);
    let access = r
        .access
        .as_ref()
        .map(|a| crate::limits::access::compile(a, &format!("{at}.access"), p));

    // Back-references must point at groups that exist.
    if let Some(a) = &action {
        action_templates(a, at, &mut refs);
    }
    for (k, t) in set_headers.iter() {
        refs.add(format!("{at}.set_headers.{k}"), t);
    }
    if let Some(pat) = &pattern {
        check_refs(&refs, pat, &conditions, p);
    }
    let needs_r = refs.0.iter().any(|(_, r, _)| r.is_some());
    let needs_c = refs.0.iter().any(|(_, _, c)| c.is_some());

    let default_stop = action.as_ref().is_none_or(Action::stops_by_default);
    let stop = match (r.stop_processing, &action) {
        (Some(false), Some(Action::Redirect { .. } | Action::Respond { .. } | Action::Abort)) => {
            p.add(
                format!("{at}.stop_processing"),
                "redirect, respond and abort end the request; only route and none can \
                 let later rules run",
            );
            true
        }
        (Some(s), _) => s,
        (None, _) => default_stop,
    };

    if p.0.len() != before {
        return None;
    }
    Some(Rule {
        compression: r.compression.is_some(),
        name: name.into(),
        pattern: pattern?,
        conditions,
        set_headers: set_headers.into(),
        action: action?,
        stop,
        needs_r,
        needs_c,
        access,
    })
}

fn template(text: &str, at: &str, maps: &Maps, p: &mut Problems) -> Option<Template> {
    Template::parse_in(text, maps)
        .map_err(|e| p.add(at, e))
        .ok()
}

fn header_entry(
    name: &str,
    value: &str,
    at: &str,
    forbidden: &[&str],
    maps: &Maps,
    p: &mut Problems,
) -> Option<(HeaderName, Template)> {
    let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
        p.add(at, format!("{name:?} is not a valid header name"));
        return None;
    };
    if forbidden.contains(&hn.as_str()) {
        p.add(at, format!("{name} cannot be set by a rule"));
        return None;
    }
    let t = template(value, at, maps, p)?;
    if t.bad_literal_bytes(|b| b < 0x20 && b != b'\t' || b == 0x7f)
        .is_some()
    {
        p.add(at, "a header value cannot hold control characters");
        return None;
    }
    Some((hn, t))
}

fn compile_action(
    a: &RawAction,
    at: &str,
    maps: &Maps,
    farms: &[&str],
    limits: &Limits,
    p: &mut Problems,
) -> Option<Action> {
    Some(match a {
        RawAction::Limit(name) => match limits.index(name) {
            Some(limit) => Action::Limit {
                limit,
                capture: match limits.get(limit).map(|l| &l.key) {
                    Some(LimitKey::RuleCapture(n)) => Some(*n),
                    _ => None,
                },
                hasher: limits.get(limit).map(|l| l.hasher).unwrap_or_default(),
            },
            None => {
                p.add(
                    format!("{at}.action.limit"),
                    format!("unknown limit {name:?}"),
                );
                return None;
            }
        },
        RawAction::Route(r) => {
            let aat = format!("{at}.action.route");
            let farm = match &r.farm {
                Some(name) => match farms.iter().position(|f| *f == name.as_str()) {
                    Some(i) => Some(i),
                    None => {
                        p.add(format!("{aat}.farm"), format!("unknown farm {name:?}"));
                        return None;
                    }
                },
                None => None,
            };
            let url = match &r.url {
                Some(u) => Some(url_template(u, &format!("{aat}.url"), true, maps, p)?),
                None => None,
            };
            Action::Route {
                farm,
                url,
                append_query: r.append_query_string.unwrap_or(true),
            }
        }
        RawAction::Redirect(r) => {
            let aat = format!("{at}.action.redirect");
            let url = url_template(&r.url, &format!("{aat}.url"), false, maps, p);
            let status = match r.status.unwrap_or(301) {
                s @ (301 | 302 | 303 | 307 | 308) => StatusCode::from_u16(s).ok(),
                s => {
                    p.add(
                        format!("{aat}.status"),
                        format!("a redirect status is 301, 302, 303, 307 or 308, not {s}"),
                    );
                    None
                }
            };
            Action::Redirect {
                url: url?,
                status: status?,
                append_query: r.append_query_string.unwrap_or(true),
            }
        }
        RawAction::Respond(r) => {
            let aat = format!("{at}.action.respond");
            let status = match StatusCode::from_u16(r.status) {
                Ok(s) if r.status >= 200 => Some(s),
                _ => {
                    p.add(
                        format!("{aat}.status"),
                        format!("a response status is 200..=999, not {}", r.status),
                    );
                    None
                }
            };
            let body = template(
                r.body.as_deref().unwrap_or(""),
                &format!("{aat}.body"),
                maps,
                p,
            );
            let mut headers = Vec::with_capacity(r.headers.0.len() + 1);
            for (k, v) in &r.headers.0 {
                let hat = format!("{aat}.headers.{k}");
                if let Some(pair) = header_entry(k, v, &hat, &UNSETTABLE, maps, p) {
                    headers.push(pair);
                }
            }
            if !headers.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
                let plain = Template::parse("text/plain; charset=utf-8").ok()?;
                headers.push((header::CONTENT_TYPE, plain));
            }
            Action::Respond {
                status: status?,
                body: body?,
                headers: headers.into(),
            }
        }
        RawAction::Abort => Action::Abort,
        RawAction::None => Action::None,
    })
}

/// A URL template; a route URL must be a path, a redirect may be absolute.
fn url_template(
    text: &str,
    at: &str,
    is_path: bool,
    maps: &Maps,
    p: &mut Problems,
) -> Option<Template> {
    let t = template(text, at, maps, p)?;
    let allowed = |b: u8| url_safe(b) || (!is_path && b == b'#');
    if let Some(b) = t.bad_literal_bytes(|b| !allowed(b)) {
        p.add(
            at,
            format!("{:?} must be percent-encoded in a URL", char::from(b)),
        );
        return None;
    }
    if is_path && !t.starts_with_slash_or_reference() {
        p.add(
            at,
            "a route url is a path starting with / (the farm is chosen by `farm`, \
             not by a host in the URL)",
        );
        return None;
    }
    if !is_path && text.is_empty() {
        p.add(at, "a redirect needs a url");
        return None;
    }
    Some(t)
}

fn action_templates(a: &Action, at: &str, refs: &mut Refs) {
    match a {
        Action::Route { url: Some(t), .. } => refs.add(format!("{at}.action.route.url"), t),
        Action::Redirect { url, .. } => refs.add(format!("{at}.action.redirect.url"), url),
        Action::Limit {
            capture: Some(n), ..
        } => {
            // The limit's key `{R:n}` must name a group of this rule.
            if let Ok(t) = Template::parse(&format!("{{R:{n}}}")) {
                refs.add(format!("{at}.action.limit"), &t);
            }
        }
        Action::Respond { body, headers, .. } => {
            refs.add(format!("{at}.action.respond.body"), body);
            for (k, t) in headers.iter() {
                refs.add(format!("{at}.action.respond.headers.{k}"), t);
            }
        }
        _ => {}
    }
}

fn check_refs(refs: &Refs, pattern: &Pattern, conds: &Conditions, p: &mut Problems) {
    for (at, r, c) in &refs.0 {
        if let Some(n) = *r {
            if pattern.is_negated() {
                p.add(
                    at.as_str(),
                    format!("{{R:{n}}} is always empty: the rule's match is negated"),
                );
            } else if n >= pattern.groups() {
                p.add(
                    at.as_str(),
                    format!(
                        "{{R:{n}}} refers to a group the match pattern does not have \
                         (it has {} capture group(s))",
                        pattern.groups() - 1
                    ),
                );
            }
        }
        if let Some(n) = *c {
            if conds.is_empty() {
                p.add(
                    at.as_str(),
                    format!("{{C:{n}}} needs a condition to refer to; the rule has none"),
                );
            } else if n >= conds.max_groups() {
                p.add(
                    at.as_str(),
                    format!("{{C:{n}}} refers to a group no (non-negated) condition pattern has"),
                );
            }
        }
    }
}
