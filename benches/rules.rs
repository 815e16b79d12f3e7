//! Rule evaluation cost for 1, 20 and 200 rules: a request that the last
//! rule routes (every pattern tried, captures taken, URL rewritten,
//! a header set) and one no rule matches (every pattern tried, nothing
//! allocated). `cargo bench --bench rules`; figures in docs/rules.md.
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use farmgate::config::{load_str, Snapshot};
use farmgate::farm::StateRegistry;
use farmgate::rules::{Outcome, RequestView};
use http::{HeaderMap, Method, Uri, Version};
use std::fmt::Write;

/// `n` rules in the shape of a real versioned/multi-service site: each one
/// a path prefix with a capture, every third one also tests the host.
fn snapshot(n: usize) -> Snapshot {
    let mut yaml = String::from(
        "listeners: [ { bind: \"127.0.0.1:0\" } ]\nadmin: { enabled: false }\nfarms:\n  \
         - { name: web, servers: [ { address: \"127.0.0.1:1\" } ] }\n  \
         - { name: api, servers: [ { address: \"127.0.0.1:2\" } ] }\ndefault_farm: web\nrules:\n",
    );
    for i in 0..n {
        write!(
            yaml,
            "  - name: svc{i}\n    match: '^/svc{i}/v(\\d+)/(.*)$'\n"
        )
        .unwrap();
        if i % 3 == 2 {
            yaml.push_str("    conditions: [ { input: \"{HTTP_HOST}\", pattern: '^api\\.' } ]\n");
        }
        yaml.push_str(
            "    set_headers: { X-Api-Version: \"{R:1}\" }\n    \
             action: { route: { farm: api, url: \"/{R:2}\" } }\n",
        );
    }
    load_str(&yaml, "bench.yaml", &StateRegistry::default()).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rules");
    let method = Method::GET;
    let mut headers = HeaderMap::new();
    headers.insert("host", "api.example.com".parse().unwrap());
    headers.insert("user-agent", "bench/1.0".parse().unwrap());
    for n in [1usize, 20, 200] {
        let snap = snapshot(n);
        let last: Uri = format!("/svc{}/v2/users/42?fields=name", n - 1)
            .parse()
            .unwrap();
        let none: Uri = "/static/app.js?v=3".parse().unwrap();
        for (case, uri) in [("last_rule_routes", &last), ("no_rule_matches", &none)] {
            let view = RequestView::new(
                &method,
                uri,
                Version::HTTP_11,
                &headers,
                b"192.0.2.1",
                443,
                true,
            );
            // The case measures what it says it does.
            let d = snap.rules.evaluate(&view);
            let rewrote = matches!(d.outcome, Outcome::Route { url: Some(_), .. });
            assert_eq!(rewrote, case == "last_rule_routes", "{case} with {n} rules");
            g.bench_with_input(BenchmarkId::new(case, n), &view, |b, view| {
                b.iter(|| snap.rules.evaluate(black_box(view)))
            });
        }
    }
    g.finish();
}

/// A redirect map of `n` entries in a two-column file, looked up by a rule
/// condition (`{Redirects:{URL}}`) as an IIS redirect map is: the request
/// evaluated end to end, and the bare lookup (hit and miss). With 1,000 and
/// 100,000 entries the figures should be the same (one hash probe).
fn bench_maps(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite_map");
    let dir = std::env::temp_dir().join(format!("farmgate-bench-maps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let method = Method::GET;
    let mut headers = HeaderMap::new();
    headers.insert("host", "www.example.com".parse().unwrap());
    for n in [1_000usize, 100_000] {
        let file = dir.join(format!("redirects-{n}.txt"));
        let mut text = String::with_capacity(n * 40);
        for i in 0..n {
            writeln!(text, "/old/Page-{i} /new/page-{i}").unwrap();
        }
        std::fs::write(&file, text).unwrap();
        let yaml = format!(
            "listeners: [ {{ bind: \"127.0.0.1:0\" }} ]\nadmin: {{ enabled: false }}\n\
             farms: [ {{ name: web, servers: [ {{ address: \"127.0.0.1:1\" }} ] }} ]\n\
             rewrite_maps: [ {{ name: Redirects, file: {file:?} }} ]\nrules:\n  \
             - match: '^/old/'\n    conditions: [ {{ input: '{{Redirects:{{URL}}}}', pattern: '.+' }} ]\n    \
             action: {{ redirect: {{ url: '{{C:0}}', append_query_string: false }} }}\n"
        );
        let snap = load_str(&yaml, "bench.yaml", &StateRegistry::default()).unwrap();
        let uri: Uri = format!("/old/page-{}", n * 3 / 4).parse().unwrap();
        let view = RequestView::new(
            &method,
            &uri,
            Version::HTTP_11,
            &headers,
            b"192.0.2.1",
            443,
            true,
        );
        let d = snap.rules.evaluate(&view);
        assert!(
            matches!(d.outcome, Outcome::Redirect { .. }),
            "{:?}",
            d.outcome
        );
        g.bench_with_input(BenchmarkId::new("redirect_by_map", n), &view, |b, view| {
            b.iter(|| snap.rules.evaluate(black_box(view)))
        });
        let map = snap.rules.maps().get("redirects").unwrap().clone();
        assert_eq!(map.len(), n);
        let hit = format!("/OLD/page-{}", n / 2);
        assert_eq!(
            map.get(hit.as_bytes()),
            format!("/new/page-{}", n / 2).as_bytes()
        );
        g.bench_with_input(BenchmarkId::new("lookup_hit", n), &hit, |b, k| {
            b.iter(|| map.get(black_box(k.as_bytes())).len())
        });
        g.bench_with_input(
            BenchmarkId::new("lookup_miss", n),
            &"/old/nothing-here",
            |b, k| b.iter(|| map.get(black_box(k.as_bytes())).len()),
        );
    }
    g.finish();
    std::fs::remove_dir_all(&dir).ok();
}

criterion_group!(benches, bench, bench_maps);
criterion_main!(benches);
