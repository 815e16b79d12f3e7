//! The HTTP/1 engine's per-request head work against today's path, on the
//! browser request head of `benches/headers.rs`:
//!
//! * engine: parse the head in place (strict scan + httparse) and write
//!   the upstream head into a reused buffer;
//! * today: what hyper's server does with the same bytes (httparse, then
//!   method, URI and a `HeaderMap` of `Bytes` slices of the read buffer),
//!   `proxy::headers` rewriting (hop-by-hop removal, X-Forwarded-*), and
//!   hyper's client encoding the map into its write buffer. A model of
//!   hyper's parse and encode (its internals are not public), leaving out
//!   its dispatch, so the real gap is wider.
//!
//! And the response side: parse a backend's response head and write the
//! client's.
//!
//! `HTTP1_COUNT=<n> HTTP1_PATH=engine|today|response` runs one path n
//! times without criterion, for an instruction count under callgrind
//! (`docs/performance.md`, "HTTP/1 fast path: the engine").

use bytes::Bytes;
use criterion::{black_box, criterion_group, Criterion};
use farmgate::config::snapshot::{ForwardedFor, ProxySpec};
use farmgate::http1::downstream::{write_response, Client};
use farmgate::http1::upstream::{write_request, ForwardedMode, Forwarding};
use farmgate::http1::{Parsed, RequestParser, ResponseParser};
use farmgate::proxy::headers::{apply_forwarded, strip_hop_by_hop, ClientSide};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::mem::MaybeUninit;
use std::time::Duration;

const REQUEST: &[u8] = b"GET /cart?id=42 HTTP/1.1\r\nHost: shop.example.com\r\nConnection: keep-alive\r\n\
Cache-Control: max-age=0\r\nsec-ch-ua: \"Chromium\";v=\"130\", \"Not?A_Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Linux\"\r\nUpgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\
Referer: https://shop.example.com/cart\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9\r\nCookie: session=3f9a7c1e5b2d4a6f8e0c; farmgate_web=web2; theme=dark\r\n\r\n";

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 21:00:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\
Cache-Control: no-store\r\nX-Request-Id: 4f1c2a\r\n\r\nhello";

fn spec() -> ProxySpec {
    ProxySpec {
        client_cert_header: http::HeaderName::from_static("x-arr-clientcert"),
        forwarded_for: ForwardedFor::Append,
        trusted_proxies: vec![],
        preserve_host: true,
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(90),
        retries: 1,
        max_request_body: 1 << 20,
        limits: Default::default(),
    }
}

/// hyper's server parse, modelled: httparse, then the request's parts
/// with values as shared slices of the read buffer.
fn hyper_like_parse(buf: &Bytes) -> (http::Method, http::Uri, HeaderMap) {
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); 100];
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => panic!("the bench head parses"),
    };
    black_box(n);
    let method = http::Method::from_bytes(req.method.unwrap_or("GET").as_bytes())
        .unwrap_or(http::Method::GET);
    let path = req.path.unwrap_or("/");
    let start = path.as_ptr() as usize - buf.as_ptr() as usize;
    let uri =
        http::Uri::from_maybe_shared(buf.slice(start..start + path.len())).unwrap_or_default();
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_maybe_shared(buf.slice(start..start + h.value.len())),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    (method, uri, map)
}

/// hyper's client encode, modelled: the head written from the map.
fn hyper_like_encode(method: &http::Method, uri: &http::Uri, map: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in map {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn forwarding() -> Forwarding<'static> {
    Forwarding {
        mode: ForwardedMode::Append,
        trusted: false,
        client_ip: b"198.51.100.23",
        proto: b"https",
        host: None,
        target: None,
    }
}

fn engine_once(parser: &mut RequestParser, fwd: &Forwarding<'_>, out: &mut Vec<u8>) -> usize {
    let bytes = black_box(REQUEST);
    let Ok(Parsed::Head(_)) = parser.parse(bytes) else {
        panic!("the bench head parses")
    };
    out.clear();
    write_request(&parser.head(bytes), fwd, &[] as &[(&[u8], &[u8])], out);
    black_box(out.len())
}

fn today_once(
    read_buf: &Bytes,
    spec: &ProxySpec,
    client: &ClientSide<'_>,
    out: &mut Vec<u8>,
) -> usize {
    let (method, uri, mut map) = hyper_like_parse(black_box(read_buf));
    strip_hop_by_hop(&mut map);
    let host = map.get(http::header::HOST).cloned();
    apply_forwarded(&mut map, spec, client, host.as_ref());
    out.clear();
    hyper_like_encode(&method, &uri, &map, out);
    black_box(out.len())
}

fn response_once(parser: &mut ResponseParser, client: &Client<'_>, out: &mut Vec<u8>) -> usize {
    let bytes = black_box(RESPONSE);
    let Ok(Some(_)) = parser.parse(bytes, false) else {
        panic!("the bench head parses")
    };
    out.clear();
    write_response(&parser.head(bytes), client, &[] as &[(&[u8], &[u8])], out);
    black_box(out.len())
}

fn request_head(c: &mut Criterion) {
    let fwd = forwarding();
    let mut parser = RequestParser::new(32 << 10);
    let mut out = Vec::with_capacity(4096);
    c.bench_function(
        "http1 engine: parse request head + write upstream head",
        |b| b.iter(|| engine_once(&mut parser, &fwd, &mut out)),
    );
    let spec = spec();
    let ip = HeaderValue::from_static("198.51.100.23");
    let client = ClientSide {
        cert: None,
        ip: &ip,
        trusted: false,
        proto: "https",
    };
    let read_buf = Bytes::from_static(REQUEST);
    c.bench_function(
        "today: hyper-like parse + proxy::headers + hyper-like encode",
        |b| b.iter(|| today_once(&read_buf, &spec, &client, &mut out)),
    );
}

fn response_head(c: &mut Criterion) {
    let mut parser = ResponseParser::new(32 << 10);
    let mut out = Vec::with_capacity(4096);
    let date = farmgate::http1::date::now();
    let client = Client {
        minor: 1,
        keep_alive: true,
        date: &date,
    };
    c.bench_function(
        "http1 engine: parse response head + write client head",
        |b| b.iter(|| response_once(&mut parser, &client, &mut out)),
    );
}

criterion_group!(benches, request_head, response_head);

/// The n-times mode for callgrind, else criterion.
fn main() {
    let count = std::env::var("HTTP1_COUNT")
        .ok()
        .and_then(|n| n.parse::<usize>().ok());
    let Some(count) = count else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    };
    let path = std::env::var("HTTP1_PATH").unwrap_or_default();
    let fwd = forwarding();
    let (spec, ip) = (spec(), HeaderValue::from_static("198.51.100.23"));
    let client = ClientSide {
        cert: None,
        ip: &ip,
        trusted: false,
        proto: "https",
    };
    let read_buf = Bytes::from_static(REQUEST);
    let date = farmgate::http1::date::now();
    let reply = Client {
        minor: 1,
        keep_alive: true,
        date: &date,
    };
    let mut parser = RequestParser::new(32 << 10);
    let mut resp = ResponseParser::new(32 << 10);
    let mut out = Vec::with_capacity(4096);
    let mut total = 0;
    for _ in 0..count {
        total += match path.as_str() {
            "engine" => engine_once(&mut parser, &fwd, &mut out),
            "today" => today_once(&read_buf, &spec, &client, &mut out),
            "response" => response_once(&mut resp, &reply, &mut out),
            other => panic!("HTTP1_PATH: engine, today or response, not {other:?}"),
        };
    }
    println!("{path} x{count}: {total} bytes written");
}
