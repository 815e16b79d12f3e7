//! What one rate-limit check costs: a key seen before, and a stream of
//! distinct keys into a full store (the flood case).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farmgate::limits::{Limiter, Rate};
use std::time::Duration;

fn checks(c: &mut Criterion) {
    let rate = Rate::new(1_000_000, Duration::from_secs(1), 1_000_000).expect("rate");
    let limiter = Limiter::new(rate, 1_000_000);
    c.bench_function("limit check, one key", |b| {
        b.iter(|| black_box(limiter.check(black_box("203.0.113.7"))))
    });
    let mut n = 0u64;
    c.bench_function("limit check, distinct keys into a full store", |b| {
        b.iter(|| {
            n += 1;
            black_box(limiter.check(&n))
        })
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
