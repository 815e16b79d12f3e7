//! The request-time limit check (`request::limit::check`) allocates
//! nothing when a request passes: keys read in place and hashed, the
//! lock-free store (a `scope: cluster` limit's too: its admitted count and
//! active-key list), the in-flight table, the counters. Counted by an
//! instrumented global allocator; one test in this binary, so no other
//! test's allocations are counted.
#![allow(clippy::unwrap_used)]

use farmgate::farm::StateRegistry;
use farmgate::request::limit::{check, Head};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const CONFIG: &str = "listeners:\n  - bind: \"127.0.0.1:0\"\n\
admin:\n  enabled: false\n\
farms:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n\
limits:\n\
\x20 - { name: ip, rate: 1000000/s, exempt: [\"10.0.0.0/8\"] }\n\
\x20 - { name: key, key: \"header:X-Api-Key\", rate: 1000000/s, concurrent: 10 }\n\
\x20 - { name: sid, key: \"cookie:sid\", rate: 1000000/s }\n\
\x20 - { name: q, key: \"query:user\", rate: 1000000/s }\n\
\x20 - { name: path, key: path, rate: 1000000/s }\n\
\x20 - { name: tier, key: \"header:X-Api-Key\", rate: 1000000/s, scope: cluster }\n\
cluster:\n  redis: \"redis://127.0.0.1:9\"\n";

#[test]
fn a_passing_check_allocates_nothing() {
    let snap = farmgate::config::load_str(CONFIG, "t.yaml", &StateRegistry::default()).unwrap();
    let (parts, ()) = http::Request::get("/cart?id=42&user=alice")
        .header("x-api-key", "k-123")
        .header("cookie", "theme=dark; sid=3f9a7c1e")
        .body(())
        .unwrap()
        .into_parts();
    let head = Head {
        parts: &parts,
        client: "203.0.113.7".parse().unwrap(),
    };
    assert!(
        snap.limits.iter().any(|l| l.state.cluster.is_some()),
        "a cluster-scope limit is checked too"
    );
    let all = || (0..snap.limits.len()).map(|i| (i, None));
    // Warm: the first check of a key claims its slots.
    drop(check(&snap.limits, &head, all()).unwrap());
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        let held = check(&snap.limits, &head, all()).unwrap();
        assert_eq!(held.len(), 1, "the concurrent limit holds a place");
    }
    let stats = region.change();
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the limit check allocated: {stats:?}"
    );
    let counted: u64 = snap.limits.iter().map(|l| l.state.allowed()).sum();
    assert_eq!(counted, 6 * 1001);
}
