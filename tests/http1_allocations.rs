//! The HTTP/1 engine allocates nothing per request once a connection's
//! buffers are warm: a keep-alive exchange over real sockets on
//! 127.0.0.1 (client -> proxy -> backend and back), the request head parsed
//! and rewritten, the chunked response parsed, re-framed and forwarded,
//! counted by an instrumented global allocator. One test in this binary,
//! so no other test's allocations are counted.
#![allow(clippy::unwrap_used)]

use farmgate::http1::body::{chunk_header, BODY_END, CHUNK_END, LAST_CHUNK};
use farmgate::http1::downstream::{write_response, Client, ClientBody};
use farmgate::http1::upstream::{write_request, ForwardedMode, Forwarding};
use farmgate::http1::{
    date, ChunkedDecoder, Parsed, Piece, ReadBuf, RequestParser, ResponseParser,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const MAX_HEAD: usize = 32 << 10;

/// What a browser sends for a page (as `benches/headers.rs`).
const REQUEST: &[u8] = b"GET /cart?id=42 HTTP/1.1\r\nHost: shop.example.com\r\nConnection: keep-alive\r\n\
Cache-Control: max-age=0\r\nsec-ch-ua: \"Chromium\";v=\"130\"\r\nUpgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nSec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\nReferer: https://shop.example.com/\r\nAccept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-GB,en;q=0.9\r\nCookie: session=3f9a7c1e5b2d4a6f8e0c; theme=dark\r\n\r\n";

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\
Cache-Control: no-store\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

/// Reads into `buf` until it ends with `end`; returns the length.
fn read_until(s: &mut TcpStream, buf: &mut [u8], end: &[u8]) -> usize {
    let mut n = 0;
    while !buf[..n].ends_with(end) {
        let got = s.read(&mut buf[n..]).unwrap();
        assert!(
            got > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        n += got;
    }
    n
}

/// The proxy's side of one connection pair.
struct Proxy {
    client: TcpStream,
    backend: TcpStream,
    req_buf: ReadBuf,
    req: RequestParser,
    up: Vec<u8>,
    resp_buf: ReadBuf,
    resp: ResponseParser,
    down: Vec<u8>,
    /// From the request for its response: HEAD, version, keep-alive.
    asked: (bool, u8, bool),
}

impl Proxy {
    /// Reads the client's request head and sends the backend its own.
    fn forward_request(&mut self) {
        let n = loop {
            if let Ok(Parsed::Head(n)) = self.req.parse(self.req_buf.data()) {
                break n;
            }
            let room = self.req_buf.spare(4096, MAX_HEAD);
            let got = self.client.read(room).unwrap();
            assert!(got > 0);
            self.req_buf.filled(got);
        };
        let fwd = Forwarding {
            mode: ForwardedMode::Append,
            trusted: false,
            client_ip: b"198.51.100.23",
            proto: b"http",
            host: None,
            target: None,
        };
        let head = self.req.head(self.req_buf.data());
        let keep_alive = head.keep_alive();
        let (minor, head_request) = (head.minor(), head.is_head_method());
        self.up.clear();
        write_request(&head, &fwd, &[] as &[(&[u8], &[u8])], &mut self.up);
        self.req_buf.consume(n);
        self.backend.write_all(&self.up).unwrap();
        self.asked = (head_request, minor, keep_alive);
    }

    /// Reads the backend's response and sends the client its own.
    fn return_response(&mut self) {
        let (head_request, minor, keep_alive) = self.asked;
        let n = loop {
            if let Some(n) = self.resp.parse(self.resp_buf.data(), head_request).unwrap() {
                break n;
            }
            let room = self.resp_buf.spare(4096, MAX_HEAD);
            let got = self.backend.read(room).unwrap();
            assert!(got > 0);
            self.resp_buf.filled(got);
        };
        let date = date::now();
        let client = Client {
            minor,
            keep_alive,
            date: &date,
        };
        self.down.clear();
        let w = write_response(
            &self.resp.head(self.resp_buf.data()),
            &client,
            &[(&b"X-Cache"[..], &b"MISS"[..])],
            &mut self.down,
        );
        assert_eq!(w.body, ClientBody::Chunked);
        self.resp_buf.consume(n);
        // The body, re-encoded chunk by chunk (the backend's own chunking
        // is not trusted to be forwarded as is).
        let mut dec = ChunkedDecoder::new(MAX_HEAD);
        let mut hdr = [0u8; 18];
        loop {
            if self.resp_buf.is_empty() {
                let room = self.resp_buf.spare(4096, MAX_HEAD);
                let got = self.backend.read(room).unwrap();
                assert!(got > 0);
                self.resp_buf.filled(got);
            }
            let (used, piece) = dec.decode(self.resp_buf.data()).unwrap();
            match piece {
                Some(Piece::Data(r)) => {
                    let data = &self.resp_buf.data()[r];
                    self.down
                        .extend_from_slice(chunk_header(data.len() as u64, &mut hdr));
                    self.down.extend_from_slice(data);
                    self.down.extend_from_slice(CHUNK_END);
                }
                Some(Piece::Trailer(r)) => {
                    self.down.extend_from_slice(LAST_CHUNK);
                    self.down.extend_from_slice(&self.resp_buf.data()[r]);
                }
                Some(Piece::End) => {
                    self.resp_buf.consume(used);
                    break;
                }
                None => {}
            }
            self.resp_buf.consume(used);
        }
        if !self.down.ends_with(b"\r\n0\r\n") {
            self.down.extend_from_slice(LAST_CHUNK);
        }
        self.down.extend_from_slice(BODY_END);
        self.client.write_all(&self.down).unwrap();
    }
}

#[test]
fn a_keep_alive_exchange_allocates_nothing_per_request() {
    let (mut client, proxy_client) = pair();
    let (proxy_backend, mut backend) = pair();
    let mut proxy = Proxy {
        client: proxy_client,
        backend: proxy_backend,
        req_buf: ReadBuf::new(),
        req: RequestParser::new(MAX_HEAD),
        up: Vec::with_capacity(4096),
        resp_buf: ReadBuf::new(),
        resp: ResponseParser::new(MAX_HEAD),
        down: Vec::with_capacity(4096),
        asked: (false, 1, true),
    };
    let (mut at_backend, mut at_client) = ([0u8; 8192], [0u8; 8192]);
    let mut round = |proxy: &mut Proxy| {
        client.write_all(REQUEST).unwrap();
        proxy.forward_request();
        let n = read_until(&mut backend, &mut at_backend, b"\r\n\r\n");
        let up = &at_backend[..n];
        assert!(up.starts_with(b"GET /cart?id=42 HTTP/1.1\r\n"));
        assert!(memchr::memmem::find(up, b"X-Forwarded-For: 198.51.100.23\r\n").is_some());
        backend.write_all(RESPONSE).unwrap();
        proxy.return_response();
        let n = read_until(&mut client, &mut at_client, b"0\r\n\r\n");
        let got = &at_client[..n];
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(memchr::memmem::find(got, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").is_some());
    };
    for _ in 0..3 {
        round(&mut proxy);
    }
    const REQUESTS: usize = 200;
    let region = Region::new(GLOBAL);
    for _ in 0..REQUESTS {
        round(&mut proxy);
    }
    let stats = region.change();
    eprintln!("{REQUESTS} proxied keep-alive requests: {stats:?}");
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the engine allocated for {REQUESTS} requests"
    );
}
