//! End to end through real sockets: forwarding, headers, errors, retries.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn round_robin_across_three_servers() {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let fg = start(&farm_config("round_robin", &[&a, &b, &c], "", "")).await;
    let http = client();
    let mut seq = Vec::new();
    for _ in 0..6 {
        let (status, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!(status, StatusCode::OK);
        seq.push(body);
    }
    assert_eq!(seq, ["a", "b", "c", "a", "b", "c"]);
}

#[tokio::test]
async fn no_server_available_is_503_with_retry_after() {
    let a = Backend::named("a").await;
    let fg = start(&farm_config("round_robin", &[&a], "", "")).await;
    fg.gateway.snapshot().farms[0].servers[0]
        .state
        .set_admin(farmgate::farm::AdminState::Disabled);
    let (status, headers, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_refused_backend_costs_no_request_get_or_post() {
    let good = Backend::named("good").await;
    let mut dead = Backend::named("dead").await;
    dead.stop();
    // Wait until the dead port really refuses.
    let dead_addr = dead.addr;
    wait_until(Duration::from_secs(5), "dead port closed", || async move {
        tokio::net::TcpStream::connect(dead_addr).await.is_err()
    })
    .await;
    let fg = start(&farm_config("round_robin", &[&dead, &good], "", "")).await;
    let http = client();
    for _ in 0..6 {
        let (status, _, body) = get(&http, &format!("http://{}/", fg.first_addr())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "good");
    }
    // A refused POST was never sent: it goes to the live server too (a POST
    // whose connection breaks after it was sent gets 502: dying_backend.rs).
    for _ in 0..4 {
        let req = Request::post(format!("http://{}/", fg.first_addr()))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let (status, _, body) = send(&http, req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "good"));
    }
}

#[tokio::test]
async fn only_dead_backends_give_502() {
    let mut dead = Backend::named("dead").await;
    dead.stop();
    let fg = start(&farm_config("round_robin", &[&dead], "", "")).await;
    let (status, _, body) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        !body.contains("127.0.0.1"),
        "error body leaks the address: {body}"
    );
}

/// A backend that answers `body` after `delay`, and the config of a farm
/// of it with `response_timeout` set to `timeout`.
async fn slow_farm(delay: Duration, body: &'static str, timeout: &str) -> (Backend, String) {
    let slow = Backend::with_handler(
        "slow",
        Arc::new(move |_req| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                text_response(200, body)
            })
        }),
    )
    .await;
    let proxy = format!("proxy:\n  response_timeout: {timeout}\n");
    let cfg = farm_config("round_robin", &[&slow], "", &proxy);
    (slow, cfg)
}

#[tokio::test]
async fn slow_backend_gives_504_at_response_timeout() {
    let (_slow, cfg) = slow_farm(Duration::from_secs(5), "late", "300ms").await;
    let fg = start(&cfg).await;
    let (status, _, _) = get(&client(), &format!("http://{}/", fg.first_addr())).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn each_request_on_a_connection_gets_its_whole_response_timeout() {
    // Each answer takes 1.2 s against a 2 s response_timeout. The second
    // request on the connection starts 1.2 s into the first one's timeout,
    // so the connection's timer, if left at the first request's deadline,
    // fires while the second waits; the second must still get its answer.
    let (_slow, cfg) = slow_farm(Duration::from_millis(1200), "ok", "2s").await;
    let fg = start(&cfg).await;
    let http = client();
    let url = format!("http://{}/", fg.first_addr());
    for _ in 0..2 {
        let (status, _, body) = get(&http, &url).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let echo = Backend::with_handler(
        "echo",
        Arc::new(|_req| {
            Box::pin(async {
                let mut r = text_response(200, "ok");
                let h = r.headers_mut();
                h.insert("connection", "x-backend-private".parse().unwrap());
                h.insert("x-backend-private", "secret".parse().unwrap());
                h.insert("keep-alive", "timeout=5".parse().unwrap());
                h.insert("x-backend-public", "yes".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = start(&farm_config("round_robin", &[&echo], "", "")).await;
    let req = Request::get(format!("http://{}/", fg.first_addr()))
        .header("connection", "x-client-private")
        .header("x-client-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "deflate")
        .header("x-client-public", "yes")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(&client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!headers.contains_key("x-backend-private"));
    assert!(!headers.contains_key("keep-alive"));
    assert_eq!(headers["x-backend-public"], "yes");
    let seen = echo.last_seen();
    for h in ["x-client-private", "keep-alive", "proxy-connection", "te"] {
        assert!(!seen.headers.contains_key(h), "{h} reached the backend");
    }
    assert_eq!(seen.headers["x-client-public"], "yes");
}

#[tokio::test]
async fn forwarded_headers_append_and_replace() {
    let a = Backend::named("a").await;
    let http = client();
    let req = |addr| {
        Request::get(format!("http://{addr}/p"))
            .header("host", "shop.example")
            .header("x-forwarded-for", "203.0.113.9")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let fg = start(&farm_config("round_robin", &[&a], "", "")).await;
    send(&http, req(fg.first_addr())).await;
    let seen = a.last_seen();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "shop.example");
    assert_eq!(seen.headers["host"], "shop.example");

    let fg2 = start(&farm_config(
        "round_robin",
        &[&a],
        "",
        "proxy:\n  forwarded_for: replace\n  preserve_host: false\n",
    ))
    .await;
    send(&http, req(fg2.first_addr())).await;
    let seen = a.last_seen();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["host"], a.addr.to_string().as_str());
}

#[tokio::test]
async fn http2_prior_knowledge_client_is_served() {
    let a = Backend::named("a").await;
    let fg = start(&farm_config("round_robin", &[&a], "", "")).await;
    let h2: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let resp = h2
        .request(
            Request::get(format!("http://{}/", fg.first_addr()))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = a.last_seen();
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert!(
        seen.headers.contains_key("host"),
        "h2 :authority must become Host"
    );
}

#[tokio::test]
async fn trailers_pass_through_to_http1_and_http2_clients() {
    use http_body_util::{BodyExt, StreamBody};
    let backend = Backend::with_handler(
        "trailers",
        Arc::new(|_req| {
            Box::pin(async {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("x-checksum", "abc123".parse().unwrap());
                let frames = vec![
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(
                        Bytes::from_static(b"body"),
                    )),
                    Ok(http_body::Frame::trailers(trailers)),
                ];
                let mut r = http::Response::new(
                    StreamBody::new(futures_util::stream::iter(frames)).boxed(),
                );
                r.headers_mut()
                    .insert("trailer", "x-checksum".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = start(&farm_config("round_robin", &[&backend], "", "")).await;
    let url = format!("http://{}/", fg.first_addr());
    let h2: TestClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    for (c, te) in [(client(), Some("trailers")), (h2, None)] {
        let mut req = Request::get(&url);
        if let Some(te) = te {
            req = req.header("te", te);
        }
        let resp = c
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers arrived");
        assert_eq!(trailers["x-checksum"], "abc123");
        assert_eq!(collected.to_bytes(), "body");
        assert_eq!(backend.last_seen().headers["te"], "trailers");
    }
}

#[tokio::test]
async fn bodies_over_max_request_body_get_413() {
    use http_body_util::{BodyExt, StreamBody};
    let sink = Backend::with_handler(
        "sink",
        Arc::new(|req| {
            Box::pin(async move {
                let n = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes().len())
                    .unwrap_or(0);
                text_response(200, n.to_string())
            })
        }),
    )
    .await;
    let fg = start(&farm_config(
        "round_robin",
        &[&sink],
        "",
        "proxy:\n  max_request_body: 1KiB\n",
    ))
    .await;
    let url = format!("http://{}/", fg.first_addr());
    let http = client();
    // Declared length over the limit: refused before the backend sees it.
    let req = Request::post(&url)
        .body(Full::new(Bytes::from(vec![b'a'; 2048])))
        .unwrap();
    assert_eq!(send(&http, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(sink.hits(), 0);
    // Under the limit: forwarded.
    let req = Request::post(&url)
        .body(Full::new(Bytes::from(vec![b'a'; 1000])))
        .unwrap();
    let (status, _, body) = send(&http, req).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1000"));
    // Chunked, growing past the limit mid-stream.
    let chunks = (0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'b'; 600])))
    });
    let chunked: hyper_util::client::legacy::Client<_, _> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = Request::post(&url)
        .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        .unwrap();
    let resp = chunked.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Backend::named("a").await;
    let fg = start(&farm_config(
        "round_robin",
        &[&a],
        "",
        "proxy:\n  idle_timeout: 300ms\n",
    ))
    .await;
    let mut s = tokio::net::TcpStream::connect(fg.first_addr())
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let mut seen = Vec::new();
    // Read the response, then keep reading: the server must close (read 0).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection was not closed");
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
}
