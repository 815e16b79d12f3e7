//! What one rate-limit check costs on the request path: the key hashed,
//! then the store's decision, for a key seen before and for a stream of
//! distinct keys into a full store (the flood case). The reference rows
//! run the same GCRA over the usual alternative, a sharded
//! `Mutex<HashMap>` (the store this one replaced), in the same run. A
//! `scope: cluster` limit's check (the tier's key hasher, the cluster
//! store's admitted count and active-key list) runs beside the local one.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use farmgate::limits::{key, ClusterStore, Decision, KeyStore, LocalStore, Rate};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The reference: 64 shards of `Mutex<HashMap<hash, TAT>>`.
struct MutexStore {
    shards: Vec<Mutex<HashMap<u64, u64>>>,
    epoch: Instant,
}

impl MutexStore {
    fn check(&self, rate: &Rate, h: u64) -> Decision {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut map = self.shards[(h >> 58) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let d = rate.check(map.get(&h).copied().unwrap_or(0), now);
        if let Decision::Allowed { new_tat, .. } = d {
            if map.len() >= 1_000_000 / 64 && !map.contains_key(&h) {
                map.retain(|_, t| *t > now);
            }
            map.insert(h, new_tat);
        }
        d
    }
}

fn checks(c: &mut Criterion) {
    let rate = Rate::new(1_000_000, Duration::from_secs(1), 1_000_000).expect("rate");
    let store = LocalStore::new(1_000_000);
    let reference = MutexStore {
        shards: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
        epoch: Instant::now(),
    };
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    c.bench_function("limit check, one client_ip key", |b| {
        b.iter(|| black_box(store.check(&rate, key::hash_ip(black_box(ip)))))
    });
    let cluster = ClusterStore::new(1_000_000, 10_000);
    let tier = key::KeyHasher::tier(b"bench\0secret");
    c.bench_function("limit check, scope: cluster, one client_ip key", |b| {
        b.iter(|| black_box(cluster.check(&rate, tier.hash_ip(black_box(ip)))))
    });
    c.bench_function("reference: Mutex<HashMap> shards, one client_ip key", |b| {
        b.iter(|| black_box(reference.check(&rate, key::hash_ip(black_box(ip)))))
    });
    let mut n = 0u32;
    c.bench_function(
        "limit check, distinct client_ip keys into a full store",
        |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                black_box(store.check(&rate, key::hash_ip(IpAddr::V4(Ipv4Addr::from(n)))))
            })
        },
    );
    let mut n = 0u32;
    c.bench_function(
        "reference: Mutex<HashMap> shards, distinct client_ip keys",
        |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                black_box(reference.check(&rate, key::hash_ip(IpAddr::V4(Ipv4Addr::from(n)))))
            })
        },
    );
}

criterion_group!(benches, checks);
criterion_main!(benches);
