//! What one rate-limit check costs on the request path: the key read from
//! the head and hashed, then the store's decision, for a key seen before
//! and for a stream of distinct keys into a full store (the flood case).
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farmgate::limits::{key, KeyStore, LocalStore, Rate};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn checks(c: &mut Criterion) {
    let rate = Rate::new(1_000_000, Duration::from_secs(1), 1_000_000).expect("rate");
    let store = LocalStore::new(1_000_000);
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    c.bench_function("limit check, one client_ip key", |b| {
        b.iter(|| black_box(store.check(&rate, key::hash_ip(black_box(ip)))))
    });
    let mut n = 0u32;
    c.bench_function("limit check, distinct client_ip keys into a full store", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = IpAddr::V4(Ipv4Addr::from(n));
            black_box(store.check(&rate, key::hash_ip(ip)))
        })
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
