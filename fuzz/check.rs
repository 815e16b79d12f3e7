//! The properties the rules fuzz target checks, shared by the cargo-fuzz
//! target (`fuzz_targets/rules.rs`) and the stable corpus replay that
//! `cargo test` runs (`tests/rules_fuzz_corpus.rs`).
//!
//! Input: line 1 is `METHOD TARGET [h2] [https]`, every further line a
//! header `Name: value`. Inputs hyper would refuse (bad method, target or
//! header) are skipped, as they never reach the rules.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use farmgate::config::{load_str, Snapshot};
use farmgate::farm::StateRegistry;
use farmgate::rules::normalize::normalize;
use farmgate::rules::{Outcome, RequestView};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use std::borrow::Cow;
use std::sync::OnceLock;

/// Every feature at once: each variable, both back-reference kinds, a
/// chained rewrite, every action. The maintenance rule is the security
/// property: no spelling of /admin may get past it.
pub const RULES: &str = r#"
listeners: [ { bind: "127.0.0.1:0" } ]
admin: { enabled: false }
farms:
  - { name: a, servers: [ { address: "127.0.0.1:1" } ] }
  - { name: b, servers: [ { address: "127.0.0.1:2" } ] }
  - { name: c, servers: [ { address: "127.0.0.1:3" } ] }
default_farm: a
rules:
  - { name: scanners, match: '\.(php|asp)$', action: abort }
  - name: maintenance
    match: '^/admin(/|$)'
    action: { respond: { status: 503, body: "down {URL}", headers: { Retry-After: 120, X-Why: "{HTTP_USER_AGENT}" } } }
  - name: tag
    match: '.*'
    conditions:
      - { input: "{HTTP_HOST}", pattern: '^([a-z0-9-]+)\.' }
      - { input: "{REMOTE_ADDR}|{SERVER_PORT}|{HTTPS}|{SERVER_PROTOCOL}", pattern: '.' }
      - { input: "{REQUEST_METHOD}", pattern: '^(GET|HEAD|POST)$' }
    set_headers: { X-Host: "{C:1}", X-Uri: "{REQUEST_URI}", X-Q: "{QUERY_STRING}", X-Any: "{HTTP_X_ANY}" }
    action: none
  - name: current
    match: '^/current/(.*)$'
    stop_processing: false
    action: { route: { url: "/v2/{R:1}" } }
  - { name: v1, match: '^/v1/(.*)$', action: { route: { farm: b, url: "/{R:1}" } } }
  - { name: v2, match: '^/v2/(.*)$', action: { route: { farm: c, url: "/{R:1}?via={HTTP_X_ANY}", append_query_string: true } } }
  - name: to-https
    match: '^/secure'
    conditions: [ { input: "{HTTPS}", pattern: '^off$' } ]
    action: { redirect: { url: "https://{HTTP_HOST}{REQUEST_URI}", status: 308, append_query_string: false } }
  - name: any
    match: { pattern: '^/API/', ignore_case: false, negate: true }
    condition_match: any
    conditions:
      - { input: "{HTTP_X_A}", pattern: '^(\w+)$' }
      - { input: "{QUERY_STRING}", pattern: 'k=([^&]*)', negate: false }
    action: { route: { farm: b, url: "/any/{C:1}{URL}" } }
"#;

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        load_str(RULES, "fuzz.yaml", &StateRegistry::default()).expect("fuzz rules are valid")
    })
}

fn maintenance() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new("(?i)^/admin(/|$)").expect("valid"))
}

fn scanner() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?i)\.(php|asp)$").expect("valid"))
}

/// Checks one input; panics when a property fails.
pub fn check(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(|&b| b == b' ');
    let Ok(method) = Method::from_bytes(words.next().unwrap_or_default()) else {
        return;
    };
    let Ok(uri) = Uri::try_from(words.next().unwrap_or_default()) else {
        return;
    };
    let (mut version, mut https) = (Version::HTTP_11, false);
    for w in words {
        match w {
            b"h2" => version = Version::HTTP_2,
            b"https" => https = true,
            _ => {}
        }
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let normalized = check_normalize(uri.path());
    let view = RequestView::new(&method, &uri, version, &headers, b"192.0.2.1", 8443, https);
    let decision = snapshot().rules.evaluate(&view);
    let Some(path) = normalized else {
        assert!(
            matches!(decision.outcome, Outcome::BadRequest),
            "an unnormalisable path was not refused: {:?}",
            uri.path()
        );
        return;
    };
    match &decision.outcome {
        Outcome::Route { url: Some(url), .. } => {
            assert!(url.as_str().starts_with('/'), "rewrite {url} is not a path");
        }
        Outcome::Redirect { location, .. } => {
            assert!(!location.as_bytes().contains(&b' '), "{location:?}");
        }
        _ => {}
    }
    // The security property: no spelling of /admin gets past the rule.
    if maintenance().is_match(&path) && !scanner().is_match(&path) {
        match &decision.outcome {
            Outcome::Respond { status, .. } => assert_eq!(status.as_u16(), 503),
            other => panic!(
                "{:?} (normalised {path:?}) dodged maintenance: {other:?}",
                uri.path()
            ),
        }
    }
}

/// Normalises and checks the result; `None` when the path is refused.
fn check_normalize(raw: &str) -> Option<String> {
    let p = normalize(raw).ok()?;
    if raw.starts_with('/') {
        assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
        assert!(!p.contains("//"), "{raw:?} -> {p:?}");
        assert!(!p.contains('\\'), "{raw:?} -> {p:?}");
        for seg in p.split('/') {
            assert!(seg != "." && seg != "..", "{raw:?} -> {p:?}");
        }
        // Unreserved characters are never left encoded.
        let b = p.as_bytes();
        for (i, _) in p.match_indices('%') {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("escape is ascii");
            let v = u8::from_str_radix(hex, 16).expect("escape is hex");
            assert!(
                !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)),
                "{raw:?} -> {p:?}"
            );
        }
    }
    // Normalising is idempotent, and a normal path is not copied.
    match normalize(&p) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*p, "{raw:?}"),
        other => panic!("{raw:?} -> {p:?} -> {other:?}"),
    }
    Some(p.into_owned())
}
