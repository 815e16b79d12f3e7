//! URL rewrite rules end to end through real sockets: the versioned-service
//! example routing to three farms, encoding tricks against the maintenance
//! rule, redirect, respond, abort (HTTP/1.1 and HTTP/2), and the 400/404
//! edges.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The shipped example with its addresses pointed at real local backends.
struct Versioned {
    fg: farmgate::Running,
    backends: Vec<Backend>,
}

impl Versioned {
    async fn start() -> Versioned {
        let mut yaml = std::fs::read_to_string("examples/versioned-service.yaml").unwrap();
        yaml = yaml.replace("0.0.0.0:8080", "127.0.0.1:0");
        yaml = yaml.replace(
            "admin:\n  bind: \"127.0.0.1:9090\"",
            "admin:\n  enabled: false",
        );
        let mut backends = Vec::new();
        for (name, addr) in [
            ("v1-a", "10.0.1.11:8080"),
            ("v1-b", "10.0.1.12:8080"),
            ("v2-a", "10.0.2.11:8080"),
            ("v2-b", "10.0.2.12:8080"),
            ("web-a", "10.0.3.11:8080"),
        ] {
            let b = Backend::named(name).await;
            assert!(yaml.contains(addr), "example no longer names {addr}");
            yaml = yaml.replace(addr, &b.addr.to_string());
            backends.push(b);
        }
        yaml.push_str("log:\n  access: off\n");
        Versioned {
            fg: start(&yaml).await,
            backends,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.fg.first_addr())
    }

    /// The request head the backend that served `body` last saw.
    fn seen_by(&self, body: &str) -> http::request::Parts {
        self.backends
            .iter()
            .find(|b| b.name == body)
            .unwrap_or_else(|| panic!("no backend {body}"))
            .last_seen()
    }
}

/// Sends raw bytes and reads until the server closes (Connection: close).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("server neither answered nor closed")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

fn raw_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn versioned_service_routes_to_three_farms_with_plain_paths() {
    let v = Versioned::start().await;
    let http = client();
    // (request path, farm prefix of the serving backend, path it must see, X-Api-Version)
    let table = [
        (
            "/v1/users/7?fields=name",
            "v1-",
            "/users/7?fields=name",
            Some("1"),
        ),
        ("/v2/users/7", "v2-", "/users/7", Some("2")),
        ("/V2/orders", "v2-", "/orders", Some("2")),
        ("/current/users/7?x=1", "v2-", "/users/7?x=1", Some("2")),
        ("/index.html", "web-", "/index.html", None),
        // Unrewritten requests keep their original bytes.
        ("/a/%7Eb/./c", "web-", "/a/%7Eb/./c", None),
    ];
    for (path, farm, seen_path, version) in table {
        let (status, _, body) = get(&http, &v.url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(body.starts_with(farm), "{path} served by {body}");
        let seen = v.seen_by(&body);
        assert_eq!(seen.uri.to_string(), seen_path, "{path}");
        assert_eq!(
            seen.headers
                .get("x-api-version")
                .map(|h| h.to_str().unwrap()),
            version,
            "{path}"
        );
    }
    // Both servers of each API farm take their share.
    for _ in 0..4 {
        get(&http, &v.url("/v1/x")).await;
    }
    assert!(v.backends[0].hits() > 0 && v.backends[1].hits() > 0);
}

#[tokio::test]
async fn encoding_tricks_hit_the_maintenance_rule() {
    let v = Versioned::start().await;
    let addr = v.fg.first_addr();
    for path in [
        "/admin",
        "/%61dmin",
        "//admin",
        "/x/../admin",
        "/%2e/admin/users",
        "/ADMIN",
    ] {
        let resp = raw(addr, &raw_get(path)).await;
        assert!(
            resp.starts_with("HTTP/1.1 503 "),
            "{path} dodged the rule: {resp}"
        );
        assert!(
            resp.to_ascii_lowercase().contains("retry-after: 120"),
            "{resp}"
        );
        assert!(resp.ends_with("Down for maintenance\n"), "{resp}");
    }
    // No backend was asked.
    assert_eq!(v.backends.iter().map(Backend::hits).sum::<usize>(), 0);
    // A path that climbs above the root is refused outright.
    let resp = raw(addr, &raw_get("/v1/../../etc/passwd")).await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    let resp = raw(addr, &raw_get("/v1/%zz")).await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
}

#[tokio::test]
async fn redirect_sends_location_and_status() {
    let v = Versioned::start().await;
    let (status, headers, body) = get(&client(), &v.url("/docs/v1/intro?lang=en")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "/docs/intro?lang=en");
    assert_eq!(body, "");
}

#[tokio::test]
async fn abort_closes_the_connection_without_a_response() {
    let v = Versioned::start().await;
    let addr = v.fg.first_addr();
    let resp = raw(addr, &raw_get("/wp-login.php")).await;
    assert_eq!(resp, "", "an aborted request got an answer");
    // Over a kept-alive connection too: nothing comes back, then EOF.
    let resp = raw(
        addr,
        "GET /x.asp HTTP/1.1\r\nHost: a\r\n\r\nGET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(resp, "", "the connection outlived the abort");
    assert_eq!(v.backends.iter().map(Backend::hits).sum::<usize>(), 0);

    // HTTP/2: the stream is reset; the connection keeps serving others.
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = |p: &str| {
        Request::get(format!("http://{addr}{p}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let aborted = tokio::time::timeout(Duration::from_secs(10), h2.request(req("/a.php")))
        .await
        .expect("no reset");
    assert!(
        aborted.is_err(),
        "an aborted HTTP/2 request got {aborted:?}"
    );
    let (status, _, body) = send(&h2, req("/v2/ok")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("v2-"), "{body}");
}

#[tokio::test]
async fn respond_rule_headers_and_unrouted_404() {
    let web = Backend::named("web").await;
    let other = Backend::named("other").await;
    let yaml = format!(
        "listeners: [ {{ bind: \"127.0.0.1:0\" }} ]
admin: {{ enabled: false }}
log: {{ access: off }}
farms:
  - {{ name: web, servers: [ {{ address: \"{}\" }} ] }}
  - {{ name: other, servers: [ {{ address: \"{}\" }} ] }}
rules:
  - name: tag
    match: \".*\"
    set_headers: {{ X-Client: \"{{REMOTE_ADDR}}:{{SERVER_PORT}}\", X-Forwarded-Proto: \"\" }}
    action: none
  - {{ match: \"^/web(/.*)$\", action: {{ route: {{ farm: web, url: \"{{R:1}}\" }} }} }}
  - {{ match: \"^/teapot$\", action: {{ respond: {{ status: 418, body: '{{\"tea\": \"{{HTTP_X_TEA}}\"}}', headers: {{ Content-Type: application/json }} }} }} }}
",
        web.addr, other.addr
    );
    let fg = start(&yaml).await;
    let http = client();
    let base = format!("http://{}", fg.first_addr());
    let (status, _, body) = get(&http, &format!("{base}/web/page")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "web"));
    let seen = web.last_seen();
    assert_eq!(seen.uri, "/page");
    assert_eq!(
        seen.headers["x-client"],
        format!("127.0.0.1:{}", fg.first_addr().port())
    );
    // An empty value removes a header, even one the proxy adds.
    assert!(!seen.headers.contains_key("x-forwarded-proto"));

    let req = Request::get(format!("{base}/teapot"))
        .header("x-tea", "green")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, body) = send(&http, req).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, r#"{"tea": "green"}"#);

    // Two farms, no default_farm, no rule routes it: 404.
    let (status, _, _) = get(&http, &format!("{base}/elsewhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other.hits(), 0);
}

#[tokio::test]
async fn demo_config_rules_work_and_every_demo_backend_stays_reachable() {
    let mut yaml = farmgate::demo::DEMO_CONFIG.replace("127.0.0.1:8080", "127.0.0.1:0");
    yaml = yaml.replace(
        "admin:\n  bind: \"127.0.0.1:9090\"",
        "admin:\n  enabled: false",
    );
    yaml = yaml.replace("access: text", "access: off");
    for (name, addr) in farmgate::demo::DEMO_BACKENDS {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        yaml = yaml.replace(addr, &l.local_addr().unwrap().to_string());
        farmgate::demo::spawn_backend(name, l);
    }
    let fg = start(&yaml).await;
    let addr = fg.first_addr();
    let http = client();
    let (_, _, body) = get(&http, &format!("http://{addr}/v1/users/7")).await;
    assert!(
        body.starts_with("Hello from demo-1: you asked for /users/7 "),
        "{body}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for path in ["/", "/", "/", "/current/a", "/v2/a"] {
        let (status, _, body) = get(&http, &format!("http://{addr}{path}")).await;
        assert_eq!(status, StatusCode::OK);
        seen.insert(body.split(':').next().unwrap().to_string());
        if path != "/" {
            assert!(body.contains("you asked for /a "), "{body}");
            assert!(!body.starts_with("Hello from demo-1"), "{body}");
        }
    }
    assert_eq!(seen.len(), 3, "not every demo backend answered: {seen:?}");
    let resp = raw(addr, &raw_get("/%61dmin")).await;
    assert!(resp.starts_with("HTTP/1.1 503 "), "{resp}");
    assert_eq!(raw(addr, &raw_get("/index.php")).await, "");
}
