//! Every server variable as a condition input, table-driven.

use super::{eval, get, routed, snap, Req};
use http::{Method, Version};

#[test]
fn every_input_variable_is_tested_by_a_condition() {
    let hit = |mut r: Req, f: fn(&mut Req)| {
        f(&mut r);
        r
    };
    let table: Vec<(&str, &str, Req, Req)> = vec![
        (
            "{HTTP_HOST}",
            "^api\\.",
            hit(get("/"), |r| r.headers = vec![("host", "API.example.com")]),
            get("/"),
        ),
        (
            "{HTTPS}",
            "^on$",
            hit(get("/"), |r| r.https = true),
            get("/"),
        ),
        (
            "{QUERY_STRING}",
            "(^|&)debug=1(&|$)",
            get("/x?a=2&debug=1"),
            get("/x?debug=10"),
        ),
        ("{REQUEST_URI}", "^/x\\?y=1$", get("/x?y=1"), get("/x?y=2")),
        (
            "{REQUEST_METHOD}",
            "^(POST|PUT)$",
            hit(get("/"), |r| r.method = Method::PUT),
            get("/"),
        ),
        (
            "{REMOTE_ADDR}",
            "^10\\.",
            hit(get("/"), |r| r.remote = "10.9.8.7"),
            get("/"),
        ),
        (
            "{SERVER_PORT}",
            "^8443$",
            hit(get("/"), |r| r.port = 8443),
            get("/"),
        ),
        (
            "{SERVER_PROTOCOL}",
            "^HTTP/2$",
            hit(get("/"), |r| r.version = Version::HTTP_2),
            get("/"),
        ),
        ("{URL}", "^/a/b$", get("/a//x/../b"), get("/a/c")),
        (
            "{HTTP_X_ANY_HEADER}",
            "^yes$",
            hit(get("/"), |r| r.headers.push(("x-any-header", "yes"))),
            hit(get("/"), |r| r.headers.push(("x-any-header", "no"))),
        ),
        (
            "{HTTP_USER_AGENT}",
            "bot",
            hit(get("/"), |r| r.headers.push(("user-agent", "GoodBot/1.0"))),
            get("/"),
        ),
        (
            "{HTTP_HOST}|{HTTPS}",
            "^www\\.example\\.com\\|off$",
            get("/"),
            hit(get("/"), |r| r.https = true),
        ),
    ];
    for (input, pattern, yes, no) in table {
        let s = snap(&format!(
            "  - match: \".*\"\n    conditions: [ {{ input: \"{input}\", pattern: \"{}\" }} ]\n    action: {{ route: {{ farm: b }} }}\n",
            pattern.replace('\\', "\\\\")
        ));
        assert_eq!(routed(&s, &eval(&s, &yes)).0, "b", "{input} should match");
        assert_eq!(
            routed(&s, &eval(&s, &no)).0,
            "a",
            "{input} should not match"
        );
    }
}

#[test]
fn http2_host_comes_from_the_authority() {
    let s = snap("  - match: \".*\"\n    conditions: [ { input: \"{HTTP_HOST}\", pattern: \"^h2\\\\.example$\" } ]\n    action: { route: { farm: c } }\n");
    let mut r = get("https://h2.example/x");
    r.headers.clear();
    r.version = Version::HTTP_2;
    assert_eq!(routed(&s, &eval(&s, &r)).0, "c");
}
