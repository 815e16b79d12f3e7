//! One server pick per balancing algorithm at 3, 100 and 1000 servers,
//! through the real `Farm::pick` of a farm compiled from YAML.
//!
//!   cargo bench --bench selection -- --warm-up-time 1 --measurement-time 2
//!
//! Servers have weights 1..=3 and a few requests in flight, and have all
//! answered once, so least_* policies compare real numbers.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use farmgate::farm::{Farm, PickRequest, StateRegistry};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn farm(algorithm: &str, servers: usize, registry: &StateRegistry) -> Farm {
    let mut yaml = format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\n\
         farms:\n  - name: bench\n    algorithm: {algorithm}\n    servers:\n"
    );
    for i in 0..servers {
        yaml.push_str(&format!(
            "      - {{ name: s{i}, address: \"10.0.{}.{}:80\", weight: {} }}\n",
            i / 250,
            i % 250 + 1,
            i % 3 + 1
        ));
    }
    let mut snap = farmgate::config::load_str(&yaml, "bench.yaml", registry)
        .unwrap_or_else(|e| panic!("bench config invalid: {e}"));
    let farm = snap.farms.remove(0);
    for (i, s) in farm.servers.iter().enumerate() {
        // Busy (1..=7 in flight): least_requests cannot stop at an idle one.
        s.state
            .in_flight
            .store(1 + (i % 7) as u64, Ordering::Relaxed);
        s.state
            .latency
            .observe(Duration::from_micros(500 + (i % 13) as u64 * 100));
    }
    farm.farm
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for algorithm in farmgate::farm::selection::ALGORITHMS {
        for servers in [3usize, 100, 1000] {
            let registry = StateRegistry::default();
            let farm = farm(algorithm, servers, &registry);
            let mut key = 0u64;
            group.bench_with_input(BenchmarkId::new(*algorithm, servers), &farm, |b, farm| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let req = PickRequest {
                        hash: Some(key),
                        ..PickRequest::default()
                    };
                    black_box(farm.pick(black_box(&req), &[]))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
