//! The properties the parser fuzz targets check, shared by the cargo-fuzz
//! targets (`fuzz_targets/*.rs`) and the stable corpus replay that `cargo
//! test` runs (`tests/fuzz_corpus.rs`). Every parser here reads bytes an
//! operator, a client or a backend controls: none may panic, and each
//! target checks a property of the result too.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use farmgate::cache::control::{parse_delta, CacheControl, DELTA_MAX};
use farmgate::config::units::{parse_duration, parse_size};
use farmgate::farm::StateRegistry;
use farmgate::health::StatusSet;
use farmgate::listener::framing::Framing;
use std::time::Duration;

/// YAML config loading and validation: any text either builds a snapshot
/// or yields errors that each name a line and a key path.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match farmgate::config::load_str(text, "fuzz.yaml", &StateRegistry::default()) {
        Ok(snap) => {
            let _ = snap.summary();
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result without errors");
            for e in &errors.0 {
                assert!(e.line >= 1, "error without a line: {e}");
                let _ = e.to_string();
            }
        }
    }
}

/// Durations and sizes: accepted values are in range, and a duration
/// written back in milliseconds reads the same.
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert!(
            d <= Duration::from_secs(10 * 365 * 86400),
            "{text:?} -> {d:?}"
        );
        let ms = d.as_millis();
        let again = parse_duration(&format!("{ms}ms")).expect("a duration in ms parses");
        assert_eq!(again.as_millis(), ms, "{text:?}");
    }
    let _ = parse_size(text);
}

/// Status sets: a set that parses holds only three-digit-or-less codes, and
/// each code written alone in the list is in it.
pub fn status_ranges(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = StatusSet::parse(text) {
        assert!(!set.contains(1000) && !set.contains(u16::MAX));
        for part in text.split(',').map(str::trim) {
            if let Ok(code) = part.parse::<u16>() {
                assert!(set.contains(code), "{code} missing from {text:?}");
            }
        }
    }
}

/// Cache-Control: parsing never panics, delta-seconds saturate at 2^31,
/// and a directive list parsed twice into the same value changes nothing
/// (directives keep their first value).
pub fn cache_control(data: &[u8]) {
    let mut once = CacheControl::default();
    once.parse_into(data);
    let mut twice = once.clone();
    twice.parse_into(data);
    assert_eq!(once, twice);
    for d in [once.max_age, once.s_maxage, once.min_fresh]
        .into_iter()
        .flatten()
    {
        assert!(d <= Duration::from_secs(DELTA_MAX));
    }
    if let Some(d) = parse_delta(data) {
        assert!(d <= Duration::from_secs(DELTA_MAX));
    }
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let mut h = http::HeaderMap::new();
        h.append(http::header::CACHE_CONTROL, v);
        assert_eq!(CacheControl::from_headers(&h), once);
    }
}

/// A farm with cookie affinity over three servers, built once.
fn affinity_snapshot() -> &'static farmgate::config::Snapshot {
    static SNAP: std::sync::OnceLock<farmgate::config::Snapshot> = std::sync::OnceLock::new();
    SNAP.get_or_init(|| {
        let yaml = "listeners: [ { bind: \"127.0.0.1:0\" } ]\nadmin: { enabled: false }\n\
                    farms:\n  - name: web\n    affinity: { cookie: FG, secret: s3cret }\n    servers:\n\
                    \x20     - { name: a, address: \"127.0.0.1:1\" }\n\
                    \x20     - { name: b, address: \"127.0.0.1:2\" }\n\
                    \x20     - { name: c, address: \"127.0.0.1:3\" }\n";
        farmgate::config::load_str(yaml, "affinity.yaml", &StateRegistry::default())
            .expect("the affinity config builds")
    })
}

/// Affinity cookie decoding: each line of the input is a Cookie header.
/// A client is bound to a server only when a server's exact cookie value is
/// in the input (forged, truncated or foreign values bind nobody), and every
/// server's own Set-Cookie value binds to that server.
pub fn affinity(data: &[u8]) {
    let farm = &affinity_snapshot().farms[0];
    let aff = farm.affinity.as_ref().expect("affinity configured");
    let values: Vec<Vec<u8>> = (0..farm.servers.len())
        .map(|i| {
            let set = aff
                .set_cookie(i, false)
                .expect("a Set-Cookie per server")
                .as_bytes();
            let v = &set[b"FG=".len()..];
            v[..v.iter().position(|b| *b == b';').unwrap_or(v.len())].to_vec()
        })
        .collect();
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = http::HeaderValue::from_bytes(line) {
            headers.append(http::header::COOKIE, v);
        }
    }
    if let Some(i) = aff.bound_server(&headers) {
        assert!(
            data.windows(values[i].len())
                .any(|w| w == values[i].as_slice()),
            "bound to server {i} without its cookie value"
        );
    }
    for (i, v) in values.iter().enumerate() {
        let mut h = http::HeaderMap::new();
        let mut cookie = b"x=1; FG=".to_vec();
        cookie.extend_from_slice(v);
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(&cookie).unwrap(),
        );
        assert_eq!(aff.bound_server(&h), Some(i));
    }
}

/// The HTTP/1 framing scanner: the first byte chooses a split point; the
/// verdict must not depend on how the bytes arrive.
pub fn framing(data: &[u8]) {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let mut whole = Framing::new(4096);
    let fed = whole.feed(bytes);
    let at = usize::from(split).min(bytes.len());
    let mut parts = Framing::new(4096);
    parts.feed(&bytes[..at]);
    let fed_parts = parts.feed(&bytes[at..]);
    assert_eq!(whole.finding(), parts.finding(), "split at {at}");
    assert_eq!(whole.is_off(), parts.is_off());
    if !bytes[at..].is_empty() {
        assert_eq!(fed, fed_parts);
    }
}

/// The PROXY protocol header parser: never panics; a header it accepts
/// ends inside the input, and a proxied address survives a v2 round trip;
/// more bytes after a complete header change nothing.
pub fn proxy_protocol(data: &[u8]) {
    use farmgate::listener::proxy_protocol::{encode_v2, parse, Header};
    let Ok((header, used)) = parse(data) else {
        return;
    };
    assert!(used <= data.len());
    let mut longer = data[..used].to_vec();
    longer.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(parse(&longer), Ok((header, used)));
    if let Header::Proxied {
        source,
        destination,
    } = header
    {
        if source.is_ipv4() == destination.is_ipv4() {
            let again = encode_v2(source, destination);
            assert_eq!(parse(&again), Ok((header, again.len())));
        }
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("units", units),
    ("status_ranges", status_ranges),
    ("cache_control", cache_control),
    ("affinity", affinity),
    ("framing", framing),
    ("proxy_protocol", proxy_protocol),
];
