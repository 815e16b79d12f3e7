//! Rules that depend on the connection being TLS: `{HTTPS}` is `on` on a
//! TLS listener and `off` on a plain one, so the IIS-style "to-https"
//! redirect rule sends plain requests over and serves TLS ones.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use common::*;
use tls::*;

#[tokio::test]
async fn https_variable_drives_the_to_https_redirect() {
    let certs = CertDir::new();
    let site = certs.issue("site", &["site.test"]);
    let app = Backend::named("app").await;
    let yaml = format!(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:0\"\n{}\
         admin: {{ enabled: false }}\nlog: {{ access: off }}\n\
         farms:\n  - {{ name: web, servers: [ {{ address: \"{}\" }} ] }}\n\
         rules:\n  \
         - name: to-https\n    match: \".*\"\n    \
           conditions: [ {{ input: \"{{HTTPS}}\", pattern: \"^off$\" }} ]\n    \
           action: {{ redirect: {{ url: \"https://{{HTTP_HOST}}{{REQUEST_URI}}\", append_query_string: false }} }}\n  \
         - name: tag\n    match: \".*\"\n    \
           set_headers: {{ X-Https: \"{{HTTPS}}\", X-Port: \"{{SERVER_PORT}}\" }}\n    action: none\n",
        tls_listener_yaml("secure", &[site], ""),
        app.addr
    );
    let fg = start(&yaml).await;
    let plain = fg.addr("plain").unwrap();
    let secure = fg.addr("secure").unwrap();

    let req = http::Request::get(format!("http://{plain}/cart?item=7"))
        .header("host", "site.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(&client(), req).await;
    assert_eq!(status, http::StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "https://site.test/cart?item=7");
    assert_eq!(app.hits(), 0);

    let stream = connect(secure, "site.test", certs.client(&["h2", "http/1.1"]))
        .await
        .unwrap();
    let mut sender = Sender::new(stream).await;
    let (status, _, body) = sender.get("site.test", "/cart?item=7").await;
    assert_eq!((status, body.as_str()), (200, "app"));
    let seen = app.last_seen();
    assert_eq!(seen.headers["x-https"], "on");
    assert_eq!(seen.headers["x-port"], secure.port().to_string().as_str());
}
