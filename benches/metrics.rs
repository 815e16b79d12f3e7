//! The cost metrics add to every request: counting a response on a server
//! (status code, latency histogram) and on a listener. Each is a handful of
//! relaxed atomic adds; this keeps it that way.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farmgate::farm::state::Attempt;
use farmgate::farm::{ServerKey, ServerState};
use farmgate::metrics::histogram::LatencyHistogram;
use farmgate::metrics::status_codes::StatusCounts;
use std::time::Duration;

fn record(c: &mut Criterion) {
    let state = ServerState::new(ServerKey {
        farm: "web".into(),
        server: "web1".into(),
    });
    // The cost of counting alone (live-traffic checks are `health/`'s).
    c.bench_function("server record_attempt (200, 7 ms)", |b| {
        b.iter(|| {
            state.record_attempt(black_box(Attempt::Response {
                status: 200,
                latency: Duration::from_micros(7_000),
            }))
        })
    });
    c.bench_function("server record_attempt (connect failure)", |b| {
        b.iter(|| state.record_attempt(black_box(Attempt::Failed { reason: "connect" })))
    });
    let codes = StatusCounts::default();
    c.bench_function("listener status count", |b| {
        b.iter(|| codes.inc(black_box(404)))
    });
    let h = LatencyHistogram::default();
    c.bench_function("latency histogram observe", |b| {
        b.iter(|| h.observe(black_box(Duration::from_millis(120))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = record
}
criterion_main!(benches);
