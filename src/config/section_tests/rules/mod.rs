//! Table-driven tests of rule compilation and evaluation, through the real
//! config pipeline (YAML text in, decisions out).

use crate::config::{load_str, Snapshot};
use crate::farm::StateRegistry;
use crate::rules::*;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

mod compile_errors;
mod inputs;
mod maps;

const FARMS: &str = "\
listeners: [ { bind: \"127.0.0.1:0\" } ]
admin: { enabled: false }
farms:
  - { name: a, servers: [ { address: \"127.0.0.1:1\" } ] }
  - { name: b, servers: [ { address: \"127.0.0.1:2\" } ] }
  - { name: c, servers: [ { address: \"127.0.0.1:3\" } ] }
default_farm: a
";

fn snap(rules: &str) -> Snapshot {
    let text = format!("{FARMS}rules:\n{rules}");
    load_str(&text, "t.yaml", &StateRegistry::default())
        .unwrap_or_else(|e| panic!("invalid:\n{e}\n---\n{text}"))
}

fn errors(rules: &str) -> Vec<String> {
    let text = format!("{FARMS}rules:\n{rules}");
    match load_str(&text, "t.yaml", &StateRegistry::default()) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

/// A request to evaluate; defaults are a plain GET over HTTP/1.1.
struct Req {
    method: Method,
    uri: &'static str,
    version: Version,
    headers: Vec<(&'static str, &'static str)>,
    remote: &'static str,
    port: u16,
    https: bool,
}

fn get(uri: &'static str) -> Req {
    Req {
        method: Method::GET,
        uri,
        version: Version::HTTP_11,
        headers: vec![("host", "www.example.com")],
        remote: "192.0.2.7",
        port: 8080,
        https: false,
    }
}

fn eval(s: &Snapshot, r: &Req) -> Decision {
    let uri: Uri = r.uri.parse().expect("test uri");
    let mut h = HeaderMap::new();
    for (k, v) in &r.headers {
        h.insert(*k, v.parse().expect("test header"));
    }
    let view = RequestView::new(
        &r.method,
        &uri,
        r.version,
        &h,
        r.remote.as_bytes(),
        r.port,
        r.https,
    );
    s.rules.evaluate(&view)
}

/// The farm name and rewritten path-and-query of a route outcome.
fn routed(s: &Snapshot, d: &Decision) -> (String, Option<String>) {
    match &d.outcome {
        Outcome::Route { farm, url } => (
            s.farms[farm.or(s.default_farm).expect("farm")]
                .name
                .to_string(),
            url.as_ref().map(|u| u.as_str().to_string()),
        ),
        other => panic!("expected a route, got {other:?}"),
    }
}

fn header<'d>(d: &'d Decision, name: &str) -> Option<&'d str> {
    d.set_headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.to_str().ok())
}

#[test]
fn rule_and_condition_back_references() {
    let s = snap(
        r#"  - name: tenant
    match: '^/v(\d+)/(.*)$'
    conditions:
      - { input: "{HTTP_HOST}", pattern: '^(\w+)\.example\.com$' }
    set_headers: { X-Tenant: "{C:1}", X-Version: "{R:1}" }
    action: { route: { farm: b, url: "/{C:1}/{R:2}?v={R:1}" } }
  - name: any-decides
    match: "^/any"
    condition_match: any
    conditions:
      - { input: "{HTTP_X_A}", pattern: "^(a+)$" }
      - { input: "{HTTP_X_B}", pattern: "^(b+)$" }
    action: { respond: { status: 200, body: "{C:1}" } }
"#,
    );
    let mut r = get("/v2/users/7?x=1");
    r.headers = vec![("host", "acme.example.com")];
    let d = eval(&s, &r);
    assert_eq!(
        routed(&s, &d),
        ("b".into(), Some("/acme/users/7?v=2&x=1".into()))
    );
    assert_eq!(header(&d, "x-tenant"), Some("acme"));
    assert_eq!(header(&d, "x-version"), Some("2"));

    // With `any`, {C:n} comes from the first condition that matched.
    for (headers, want) in [
        (vec![("x-b", "bbb")], "bbb"),
        (vec![("x-a", "aa"), ("x-b", "b")], "aa"),
    ] {
        let mut r = get("/any");
        r.headers = headers;
        match eval(&s, &r).outcome {
            Outcome::Respond { body, .. } => assert_eq!(&body[..], want.as_bytes()),
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn route_rewrites_path_and_query() {
    let s = snap(
        r#"  - { match: "^/keep/(.*)", action: { route: { farm: b, url: "/{R:1}" } } }
  - { match: "^/drop/(.*)", action: { route: { farm: b, url: "/{R:1}", append_query_string: false } } }
  - { match: "^/own/(.*)", action: { route: { farm: b, url: "/{R:1}?a=1" } } }
  - { match: "^/nourl", action: { route: { farm: c } } }
  - { match: "^/bare/(.*)", action: { route: { url: "{R:1}" } } }
"#,
    );
    let table = [
        ("/keep/x?q=1", "b", Some("/x?q=1")),
        ("/keep/x", "b", Some("/x")),
        ("/drop/x?q=1", "b", Some("/x")),
        ("/own/x?q=1", "b", Some("/x?a=1&q=1")),
        ("/nourl/%7Ex?q=1", "c", None),
        ("/bare/y", "a", Some("/y")),
        ("/other", "a", None),
    ];
    for (uri, farm, url) in table {
        let d = eval(&s, &get(uri));
        assert_eq!(
            routed(&s, &d),
            (farm.to_string(), url.map(str::to_string)),
            "{uri}"
        );
    }
}

#[test]
fn redirect_respond_abort_and_none() {
    let s = snap(
        r#"  - name: tag
    match: ".*"
    set_headers: { X-Seen: "yes" }
    action: none
  - name: to-https
    match: "^/secure"
    conditions: [ { input: "{HTTPS}", pattern: "^off$" } ]
    action: { redirect: { url: "https://{HTTP_HOST}{REQUEST_URI}", status: 308, append_query_string: false } }
  - name: moved
    match: "^/old/(.*)"
    action: { redirect: { url: "/new/{R:1}" } }
  - name: maintenance
    match: "^/admin"
    action: { respond: { status: 503, body: "Down for maintenance", headers: { Retry-After: 120 } } }
  - name: json
    match: "^/json"
    action: { respond: { status: 418, body: '{"teapot": true}', headers: { Content-Type: application/json } } }
  - { name: scanners, match: "\\.(php|asp)$", action: abort }
"#,
    );
    match eval(&s, &get("/secure/a?b=1")).outcome {
        Outcome::Redirect { status, location } => {
            assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
            assert_eq!(location, "https://www.example.com/secure/a?b=1");
        }
        o => panic!("{o:?}"),
    }
    match eval(&s, &get("/old/x?b=1")).outcome {
        Outcome::Redirect { status, location } => {
            assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
            assert_eq!(location, "/new/x?b=1");
        }
        o => panic!("{o:?}"),
    }
    match eval(&s, &get("/ADMIN/users")).outcome {
        Outcome::Respond {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(&body[..], b"Down for maintenance");
            assert!(headers
                .iter()
                .any(|(n, v)| n == "retry-after" && v == "120"));
            assert!(headers
                .iter()
                .any(|(n, v)| n == "content-type" && v == "text/plain; charset=utf-8"));
        }
        o => panic!("{o:?}"),
    }
    match eval(&s, &get("/json")).outcome {
        Outcome::Respond { headers, body, .. } => {
            assert_eq!(&body[..], br#"{"teapot": true}"#);
            let types: Vec<_> = headers
                .iter()
                .filter(|(n, _)| n == "content-type")
                .collect();
            assert_eq!(types.len(), 1);
            assert_eq!(types[0].1, "application/json");
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        eval(&s, &get("/wp-login.php")).outcome,
        Outcome::Abort
    ));
    // `none` only sets headers, and evaluation goes on to the default farm.
    let d = eval(&s, &get("/page"));
    assert_eq!(routed(&s, &d), ("a".into(), None));
    assert_eq!(header(&d, "x-seen"), Some("yes"));
    assert_eq!(d.rule, Some(0));
}

#[test]
fn a_route_that_does_not_stop_lets_later_rules_see_the_rewrite() {
    let s = snap(
        r#"  - name: current
    match: "^/current/(.*)"
    stop_processing: false
    action: { route: { url: "/v2/{R:1}" } }
  - name: v2
    match: "^/v2/(.*)"
    set_headers: { X-Api-Version: "2" }
    action: { route: { farm: c, url: "/{R:1}" } }
  - name: tag
    match: ".*"
    set_headers: { X-Late: "{URL}" }
    action: none
"#,
    );
    let d = eval(&s, &get("/current/users?id=3"));
    assert_eq!(routed(&s, &d), ("c".into(), Some("/users?id=3".into())));
    assert_eq!(header(&d, "x-api-version"), Some("2"));
    // The v2 route stopped processing: the tag rule never ran.
    assert_eq!(header(&d, "x-late"), None);
    assert_eq!(d.rule, Some(1));
}

#[test]
fn negate_any_all_and_ignore_case() {
    let s = snap(
        r#"  - name: not-api
    match: { pattern: "^/api/", negate: true }
    conditions: [ { input: "{HTTP_X_T}", pattern: "^neg$" } ]
    action: { route: { farm: b } }
  - name: all
    match: "^/api/all"
    conditions:
      - { input: "{HTTP_X_A}", pattern: "^1$" }
      - { input: "{HTTP_X_B}", pattern: "^1$", negate: true }
    action: { route: { farm: b } }
  - name: any
    match: "^/api/any"
    condition_match: any
    conditions:
      - { input: "{HTTP_X_A}", pattern: "^1$" }
      - { input: "{HTTP_X_B}", pattern: "^1$" }
    action: { route: { farm: b } }
  - name: exact-case
    match: { pattern: "^/api/Case$", ignore_case: false }
    action: { route: { farm: b } }
  - name: condition-case
    match: "^/api/cond"
    conditions: [ { input: "{HTTP_X_A}", pattern: "^abc$", ignore_case: false } ]
    action: { route: { farm: b } }
  - { name: default-case, match: "^/API/LOUD$", action: { route: { farm: c } } }
"#,
    );
    let h = |uri: &'static str, hs: Vec<(&'static str, &'static str)>| {
        let mut r = get(uri);
        r.headers.extend(hs);
        r
    };
    let table = [
        (h("/other", vec![("x-t", "neg")]), "b"),
        (h("/api/x", vec![("x-t", "neg")]), "a"),
        (h("/api/all", vec![("x-a", "1")]), "b"),
        (h("/api/all", vec![("x-a", "1"), ("x-b", "1")]), "a"),
        (h("/api/all", vec![]), "a"),
        (h("/api/any", vec![("x-b", "1")]), "b"),
        (h("/api/any", vec![("x-a", "1")]), "b"),
        (h("/api/any", vec![("x-a", "2")]), "a"),
        (h("/api/Case", vec![]), "b"),
        (h("/api/case", vec![]), "a"),
        (h("/api/cond", vec![("x-a", "abc")]), "b"),
        (h("/api/cond", vec![("x-a", "ABC")]), "a"),
        (h("/api/loud", vec![]), "c"),
    ];
    for (i, (r, farm)) in table.iter().enumerate() {
        assert_eq!(routed(&s, &eval(&s, r)).0, *farm, "row {i}: {}", r.uri);
    }
}

#[test]
fn encoding_tricks_reach_the_maintenance_rule_and_climbing_is_400() {
    let s = snap("  - { match: \"^/admin\", action: { respond: { status: 503, body: down } } }\n");
    for uri in [
        "/%61dmin",
        "//admin",
        "/x/../admin",
        "/./admin/",
        "/%2e/admin",
    ] {
        assert!(
            matches!(eval(&s, &get(uri)).outcome, Outcome::Respond { .. }),
            "{uri} dodged the rule"
        );
    }
    for uri in ["/../admin", "/a/../../admin", "/%zzadmin"] {
        assert!(
            matches!(eval(&s, &get(uri)).outcome, Outcome::BadRequest),
            "{uri}"
        );
    }
}

#[test]
fn empty_header_value_removes_and_later_rules_win() {
    let s = snap(
        r#"  - { match: ".*", set_headers: { X-A: "first", X-Internal: "" }, action: none }
  - { match: ".*", set_headers: { X-A: "second" }, action: none }
"#,
    );
    let d = eval(&s, &get("/"));
    assert_eq!(header(&d, "x-a"), Some("second"));
    assert_eq!(header(&d, "x-internal"), Some(""));
    assert_eq!(d.set_headers.len(), 2);
}

#[test]
fn long_rule_lists_past_the_prefilter_set_still_match_in_order() {
    // 300 rules: the first 256 answered by the one-pass set, the rest one
    // by one (evaluate cross-checks every answer in debug builds).
    let mut rules = String::new();
    for i in 0..300 {
        let farm = ["a", "b", "c"][i % 3];
        rules.push_str(&format!(
            "  - {{ match: '^/s{i}/(.*)$', action: {{ route: {{ farm: {farm}, url: \"/{{R:1}}\" }} }} }}\n"
        ));
    }
    rules.push_str(
        "  - { match: { pattern: '^/s', negate: true }, action: { route: { farm: c } } }\n",
    );
    let s = snap(&rules);
    for (uri, farm, url) in [
        ("/s10/x", "b", Some("/x")),
        ("/S255/y", "a", Some("/y")),
        ("/s256/z", "b", Some("/z")),
        ("/s299/w", "c", Some("/w")),
        ("/other", "c", None),
        ("/s300/none", "a", None),
    ] {
        let d = eval(&s, &get(uri));
        assert_eq!(
            routed(&s, &d),
            (farm.into(), url.map(String::from)),
            "{uri}"
        );
    }
}
