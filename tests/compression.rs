//! Response compression end to end: a real backend, farmgate on real
//! sockets, and real decoders (flate2, brotli, zstd) on what the client
//! receives. Round trips per algorithm around `min_size` and at 5 MiB,
//! negotiation, every "never" case, Vary and ETag, streaming with
//! flushes, cached variants and purge, per-rule overrides, counters.
#![allow(clippy::unwrap_used)]

mod common;
use bytes::Bytes;
use common::*;
use farmgate::compress::Algorithm;
use futures_util::stream;
use http::{Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

/// Text that compresses but not to nothing: lines with a counter.
fn text(n: usize) -> Bytes {
    let mut v = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(
            format!("<li id=\"item-{i}\">farmgate {}</li>\n", i * 7919 % 1000).as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v.into()
}

fn decode(a: Algorithm, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match a {
        Algorithm::Gzip => flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .map(drop),
        Algorithm::Brotli => brotli::Decompressor::new(data, 4096)
            .read_to_end(&mut out)
            .map(drop),
        Algorithm::Zstd => zstd::stream::read::Decoder::new(data)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(drop),
    }
    .unwrap_or_else(|e| panic!("{a:?} body does not decode: {e}"));
    out
}

/// The backend: `/len/N` answers N bytes of text with Content-Length,
/// `/chunked/N` the same in 1000-byte frames without one; `/h/...` answers
/// 2 KiB of text with the headers of its query (`k=v&k=v`, `~` for spaces
/// and `_` for `/`... kept simple: see `headers_of`), `status` included.
async fn origin() -> Backend {
    Backend::with_handler(
        "origin",
        Arc::new(|req| {
            Box::pin(async move {
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or("").to_string();
                if let Some(n) = path.strip_prefix("/len/") {
                    let mut r = text_response(200, text(n.parse().unwrap()));
                    r.headers_mut()
                        .insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
                    return r;
                }
                if let Some(n) = path.strip_prefix("/chunked/") {
                    let body = text(n.parse().unwrap());
                    let frames: Vec<Result<Frame<Bytes>, BoxErr>> = body
                        .chunks(1000)
                        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                        .collect();
                    let mut r =
                        http::Response::new(BodyExt::boxed(StreamBody::new(stream::iter(frames))));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    return r;
                }
                let mut r = text_response(200, text(2048));
                r.headers_mut()
                    .insert("content-type", "text/html".parse().unwrap());
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap();
                    let v = v.replace('~', " ").replace("%22", "\"");
                    if k == "status" {
                        *r.status_mut() = StatusCode::from_u16(v.parse().unwrap()).unwrap();
                        if v == "204" || v == "304" {
                            *r.body_mut() = full(Bytes::new());
                        }
                    } else {
                        r.headers_mut().insert(
                            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            v.parse().unwrap(),
                        );
                    }
                }
                r
            })
        }),
    )
    .await
}

const COMPRESSION: &str = "    compression:\n      min_size: 1KiB\n";

async fn gate(b: &Backend, farm_extra: &str) -> farmgate::Running {
    start(&farm_config("round_robin", &[b], farm_extra, "")).await
}

struct Got {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Got {
    fn encoding(&self) -> Option<&str> {
        self.headers
            .get("content-encoding")
            .map(|v| v.to_str().unwrap())
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn fetch(fg: &farmgate::Running, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", fg.first_addr()));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client().request(b.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("timed out")
    .expect("request failed");
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get_ae(fg: &farmgate::Running, path: &str, ae: &str) -> Got {
    fetch(fg, "GET", path, &[("accept-encoding", ae)]).await
}

fn stats(fg: &farmgate::Running, a: Algorithm) -> farmgate::compress::stats::Counts {
    fg.gateway.snapshot().farms[0].compression.stats.get(a)
}

#[tokio::test]
async fn each_algorithm_round_trips_around_min_size_and_at_5_mib() {
    let b = origin().await;
    let fg = gate(&b, COMPRESSION).await;
    for a in Algorithm::ALL {
        for kind in ["len", "chunked"] {
            for n in [1023usize, 1024, 1025, 5 << 20] {
                let got = get_ae(&fg, &format!("/{kind}/{n}"), a.token()).await;
                assert_eq!(got.status, 200);
                let want = text(n);
                if n < 1024 {
                    assert_eq!(got.encoding(), None, "{a:?} {kind} {n}: below min_size");
                    assert_eq!(got.body, want);
                    continue;
                }
                assert_eq!(got.encoding(), Some(a.token()), "{a:?} {kind} {n}");
                assert_eq!(got.header("content-length"), None, "streamed: no length");
                assert_eq!(got.header("vary"), Some("Accept-Encoding"));
                let decoded = decode(a, &got.body);
                assert!(decoded == want, "{a:?} {kind} {n}: decoded body differs");
                assert!(
                    got.body.len() < n / 2,
                    "{a:?} {kind} {n}: barely compressed"
                );
            }
        }
        let c = stats(&fg, a);
        assert_eq!(c.responses, 6, "{a:?}");
        assert_eq!(c.encodes, 6, "{a:?}");
        assert_eq!(c.bytes_in, 2 * (1024 + 1025 + (5 << 20)), "{a:?}");
        assert!(c.bytes_out < c.bytes_in / 2, "{a:?}");
    }
}

#[tokio::test]
async fn accept_encoding_q_values_pick_the_algorithm() {
    let b = origin().await;
    let fg = gate(&b, COMPRESSION).await;
    let cases: &[(&str, Option<&str>)] = &[
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip, zstd", Some("zstd")),
        ("br;q=0.5, gzip;q=0.8", Some("gzip")),
        ("*", Some("br")),
        ("br;q=0, *;q=0.3", Some("zstd")),
        ("identity;q=0", None),
        ("gzip;q=0, br;q=0, zstd;q=0", None),
        ("deflate", None),
        ("identity", None),
    ];
    for (ae, want) in cases {
        let got = get_ae(&fg, "/len/4000", ae).await;
        assert_eq!(got.encoding(), *want, "Accept-Encoding: {ae}");
        let body = match want {
            Some(t) => decode(
                Algorithm::ALL
                    .into_iter()
                    .find(|a| a.token() == *t)
                    .unwrap(),
                &got.body,
            ),
            None => got.body.to_vec(),
        };
        assert!(body == text(4000), "Accept-Encoding: {ae}");
        // Either way the answer depended on Accept-Encoding.
        assert_eq!(got.header("vary"), Some("Accept-Encoding"), "{ae}");
    }
    let none = fetch(&fg, "GET", "/len/4000", &[]).await;
    assert_eq!(none.encoding(), None, "no Accept-Encoding, no encoding");

    // Ties between equal q-values follow the configured order.
    let fg2 = gate(&b, "    compression:\n      algorithms: [gzip, zstd]\n").await;
    assert_eq!(
        get_ae(&fg2, "/len/4000", "br, zstd, gzip").await.encoding(),
        Some("gzip")
    );
    assert_eq!(get_ae(&fg2, "/len/4000", "br").await.encoding(), None);
}

#[tokio::test]
async fn never_compressed() {
    let b = origin().await;
    let fg = gate(&b, COMPRESSION).await;
    let original = text(2048);
    let encoded = get_ae(&fg, "/h?content-encoding=gzip", "gzip, br").await;
    assert_eq!(
        encoded.encoding(),
        Some("gzip"),
        "the backend's own encoding"
    );
    assert!(
        encoded.body == original,
        "already encoded: passed through as is"
    );
    assert_eq!(encoded.header("vary"), None);
    let cases = [
        ("no-transform", "/h?cache-control=public,~no-transform"),
        ("206", "/h?status=206&content-range=bytes~0-2047/4096"),
        ("content-range", "/h?content-range=bytes~0-2047/4096"),
        ("type not listed", "/h?content-type=image/png"),
        ("event stream", "/h?content-type=text/event-stream"),
        ("small", "/len/1000"),
    ];
    for (what, path) in cases {
        let got = get_ae(&fg, path, "gzip, br, zstd").await;
        assert_eq!(got.encoding(), None, "{what}");
        if what != "small" {
            assert!(got.body == original, "{what}: body changed");
        }
        assert_eq!(got.header("vary"), None, "{what}: nothing varies");
    }
    for status in ["204", "304"] {
        let got = get_ae(&fg, &format!("/h?status={status}"), "gzip").await;
        assert_eq!(got.status.as_str(), status);
        assert_eq!(got.encoding(), None, "{status}");
        assert!(got.body.is_empty());
    }
    let head = fetch(&fg, "HEAD", "/len/4000", &[("accept-encoding", "gzip")]).await;
    assert_eq!(head.encoding(), None, "HEAD");
    assert_eq!(head.header("content-length"), Some("4000"));
    assert_eq!(stats(&fg, Algorithm::Gzip).encodes, 0);
}

#[tokio::test]
async fn vary_is_merged_and_the_etag_made_weak() {
    let b = origin().await;
    let fg = gate(&b, COMPRESSION).await;
    let path = "/h?vary=Cookie&etag=%22v7%22&accept-ranges=bytes";
    let got = get_ae(&fg, path, "gzip").await;
    assert_eq!(got.encoding(), Some("gzip"));
    assert_eq!(got.header("vary"), Some("Cookie, Accept-Encoding"));
    assert_eq!(got.header("etag"), Some("W/\"v7\""));
    assert_eq!(got.header("content-length"), None);
    assert_eq!(got.header("accept-ranges"), None);

    let plain = get_ae(&fg, path, "identity").await;
    assert_eq!(plain.encoding(), None);
    assert_eq!(plain.header("vary"), Some("Cookie, Accept-Encoding"));
    assert_eq!(
        plain.header("etag"),
        Some("\"v7\""),
        "identity keeps the strong tag"
    );
    assert_eq!(plain.header("content-length"), Some("2048"));

    let already = get_ae(&fg, "/h?vary=accept-encoding", "br").await;
    assert_eq!(already.header("vary"), Some("accept-encoding"));
}

/// A streaming decoder fed frame by frame.
enum Stream {
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Stream {
    fn new(a: Algorithm) -> Stream {
        match a {
            Algorithm::Gzip => Stream::Gzip(Box::new(flate2::write::GzDecoder::new(Vec::new()))),
            Algorithm::Brotli => {
                Stream::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096)))
            }
            Algorithm::Zstd => Stream::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
        }
    }
    /// Feeds `data`; returns everything decoded so far.
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        match self {
            Stream::Gzip(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref().clone()
            }
            Stream::Brotli(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref().clone()
            }
            Stream::Zstd(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref().clone()
            }
        }
    }
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_chunk_by_chunk() {
    // The backend sends a chunk every 100 ms, each only once the client
    // has decoded the one before: a chunk held back in farmgate stalls
    // the test, however fast the machine.
    let (tx, rx) = mpsc::channel::<()>(1);
    let rx = Arc::new(Mutex::new(rx));
    let b = Backend::with_handler(
        "ticker",
        Arc::new(move |_req| {
            let rx = rx.clone();
            Box::pin(async move {
                let body = stream::unfold(0usize, move |i| {
                    let rx = rx.clone();
                    async move {
                        if i == 5 {
                            return None;
                        }
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            rx.lock().await.recv().await?;
                        }
                        let chunk = format!("chunk {i}: {}\n", "tick ".repeat(300));
                        Some((Ok::<_, BoxErr>(Frame::data(Bytes::from(chunk))), i + 1))
                    }
                });
                let mut r = http::Response::new(BodyExt::boxed(StreamBody::new(body)));
                r.headers_mut()
                    .insert("content-type", "text/plain".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let fg = gate(&b, COMPRESSION).await;
    for a in Algorithm::ALL {
        let req = Request::get(format!("http://{}/ticks", fg.first_addr()))
            .header("accept-encoding", a.token())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.headers()["content-encoding"], a.token());
        let mut body = resp.into_body();
        let mut dec = Stream::new(a);
        for i in 0..5 {
            let want = format!("chunk {i}: ");
            let wait = async {
                loop {
                    let frame = body.frame().await.expect("body ended early").unwrap();
                    if let Ok(data) = frame.into_data() {
                        let text = String::from_utf8(dec.feed(&data)).unwrap();
                        if text.contains(&want) {
                            return;
                        }
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .unwrap_or_else(|_| panic!("{a:?}: chunk {i} held back"));
            if i < 4 {
                tx.send(()).await.unwrap();
            }
        }
        while let Some(f) = body.frame().await {
            f.unwrap();
        }
    }
}

#[tokio::test]
async fn cache_hits_reuse_the_encoded_variant_and_purge_removes_it() {
    let b = origin().await;
    let extra = format!("    cache:\n      enabled: true\n{COMPRESSION}");
    let fg = gate(&b, &extra).await;
    let path = "/h?cache-control=max-age=600&etag=%22e1%22";
    let original = text(2048);

    let miss = get_ae(&fg, path, "gzip").await;
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    assert_eq!(miss.encoding(), Some("gzip"));
    assert!(decode(Algorithm::Gzip, &miss.body) == original);
    assert_eq!(stats(&fg, Algorithm::Gzip).encodes, 1);

    // The first hit encodes the stored body once and keeps it.
    let first = get_ae(&fg, path, "gzip").await;
    assert_eq!(first.header("x-cache"), Some("HIT"));
    assert_eq!(first.encoding(), Some("gzip"));
    assert_eq!(first.header("etag"), Some("W/\"e1\""));
    assert_eq!(first.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        first.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );
    assert!(decode(Algorithm::Gzip, &first.body) == original);
    let after_first = stats(&fg, Algorithm::Gzip);
    assert_eq!(after_first.encodes, 2);

    // Later hits: no compression work, the same bytes.
    for _ in 0..3 {
        let hit = get_ae(&fg, path, "gzip;q=1, br;q=0.5").await;
        assert_eq!(hit.header("x-cache"), Some("HIT"));
        assert!(hit.body == first.body, "a hit is byte-identical");
        assert_eq!(hit.headers.get("etag"), first.headers.get("etag"));
    }
    let c = stats(&fg, Algorithm::Gzip);
    assert_eq!(
        c.encodes, after_first.encodes,
        "hits on a kept variant do no work"
    );
    assert_eq!(c.responses, after_first.responses + 3);

    // Identity still hits the same entry; another encoding gets its own.
    let plain = fetch(&fg, "GET", path, &[]).await;
    assert_eq!(plain.header("x-cache"), Some("HIT"));
    assert_eq!(plain.encoding(), None);
    assert!(plain.body == original);
    let br = get_ae(&fg, path, "br").await;
    assert_eq!(br.header("x-cache"), Some("HIT"));
    assert!(decode(Algorithm::Brotli, &br.body) == original);
    assert_eq!(b.hits(), 1, "one backend request in all");

    // Variants weigh in the store, and purge takes them all.
    let snap = fg.gateway.snapshot();
    let store = &snap.farms[0].cache.as_ref().unwrap().store;
    assert!(store.size_bytes() > (original.len() + first.body.len() + br.body.len()) as u64);
    assert_eq!(store.purge(None), 1);
    assert_eq!(
        store.size_bytes(),
        0,
        "nothing left of the entry or its variants"
    );
    let again = get_ae(&fg, path, "gzip").await;
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(b.hits(), 2);
    let rehit = get_ae(&fg, path, "gzip").await;
    assert_eq!(rehit.header("x-cache"), Some("HIT"));
    assert_eq!(
        stats(&fg, Algorithm::Gzip).encodes,
        c.encodes + 2,
        "encoded anew after purge"
    );
}

#[tokio::test]
async fn a_rule_overrides_the_farm() {
    let b = origin().await;
    let rules = "rules:\n\
                 \x20 - name: raw\n    match: ^/len/5\n    compression: {enabled: false}\n    action: {route: {farm: web}}\n\
                 \x20 - name: gz\n    match: ^/chunked/\n    compression: {algorithms: [gzip], level: {gzip: 1}}\n    action: {route: {farm: web}}\n";
    // Compression on for the farm, off for /len/5...
    let fg = start(&farm_config("round_robin", &[&b], COMPRESSION, rules)).await;
    assert_eq!(get_ae(&fg, "/len/4000", "br").await.encoding(), Some("br"));
    assert_eq!(get_ae(&fg, "/len/5000", "br").await.encoding(), None);
    let gz = get_ae(&fg, "/chunked/4000", "br, gzip;q=0.5").await;
    assert_eq!(gz.encoding(), Some("gzip"), "the rule offers gzip only");
    assert!(decode(Algorithm::Gzip, &gz.body) == text(4000));
    // ... and a rule turns it on for a farm without compression.
    let fg = start(&farm_config("round_robin", &[&b], "", rules)).await;
    assert_eq!(get_ae(&fg, "/len/4000", "gzip").await.encoding(), None);
    assert_eq!(
        get_ae(&fg, "/chunked/4000", "gzip").await.encoding(),
        Some("gzip")
    );
    assert_eq!(
        stats(&fg, Algorithm::Gzip).responses,
        1,
        "counted for the farm"
    );
}

#[tokio::test]
async fn bad_settings_are_reported_with_their_keys() {
    let b = origin().await;
    let cfg = farm_config(
        "round_robin",
        &[&b],
        "    compression:\n      algorithms: [br, lzma]\n      level: {gzip: 12}\n",
        "",
    );
    let err = match farmgate::config::load_str(&cfg, "t.yaml", &Default::default()) {
        Ok(_) => panic!("a bad compression section was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("farms[0].compression.algorithms[1]"), "{err}");
    assert!(err.contains("farms[0].compression.level.gzip"), "{err}");
}

#[tokio::test]
async fn an_upgraded_connection_passes_through_untouched() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let addr = ws_echo_server().await;
    let cfg = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: ws\n    compression: {{ min_size: 0 }}\n    servers:\n      - address: \"{addr}\"\n"
    );
    let fg = start(&cfg).await;
    let mut req = format!("ws://{}/chat", fg.first_addr())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("accept-encoding", "gzip, br, zstd".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("content-encoding").is_none());
    let big = String::from_utf8(text(4000).to_vec()).unwrap();
    for _ in 0..3 {
        ws.send(Message::text(big.clone())).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), big);
    }
    ws.close(None).await.unwrap();
}
