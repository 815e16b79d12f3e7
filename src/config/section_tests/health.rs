//! The health sections through the real config pipeline: defaults,
//! compiled values and errors placed in the file.

use crate::config::load_str;
use crate::farm::StateRegistry;
use crate::health::spec::*;
use http::Method;
use std::time::Duration;

fn farm(extra: &str) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nfarms:\n  - name: web\n    servers:\n      \
         - address: \"127.0.0.1:9001\"\n      - address: \"127.0.0.1:9002\"\n{extra}"
    )
}

fn errors(extra: &str) -> Vec<String> {
    match load_str(&farm(extra), "f.yaml", &StateRegistry::default()) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_full_health_section_compiles() {
    let yaml = farm(
        "    health_check:\n      url: http://shop.example/health\n      method: head\n      \
         interval: 10s\n      timeout: 3s\n      acceptable_status: 200\n      \
         healthy_threshold: 2\n      unhealthy_threshold: 3\n    live_traffic:\n      \
         failure_codes: \"500-599\"\n      max_failures: 10\n      failover_period: 1m\n    \
         min_servers: 2\n    slow_start: 30s\n",
    );
    let snap = load_str(&yaml, "f.yaml", &StateRegistry::default()).expect("valid");
    let h = &snap.farms[0].health;
    let c = h.check.as_ref().expect("check");
    assert_eq!(c.method, Method::HEAD);
    assert_eq!(c.host.as_ref().expect("host"), "shop.example");
    assert_eq!(
        (c.interval, c.timeout),
        (Duration::from_secs(10), Duration::from_secs(3))
    );
    assert_eq!(c.acceptable.to_string(), "200");
    assert_eq!((c.healthy_threshold, c.unhealthy_threshold), (2, 3));
    let l = h.live.as_ref().expect("live");
    assert_eq!((l.max_failures, l.period), (10, Duration::from_secs(60)));
    assert!(l.failure_codes.contains(599) && !l.failure_codes.contains(499));
    assert_eq!((h.min_servers, h.slow_start), (2, Duration::from_secs(30)));
}

#[test]
fn defaults() {
    let yaml = farm("    health_check:\n      url: /health\n    live_traffic: {}\n");
    let snap = load_str(&yaml, "f.yaml", &StateRegistry::default()).expect("valid");
    let h = &snap.farms[0].health;
    let c = h.check.as_ref().expect("check");
    assert_eq!((c.interval, c.timeout), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT));
    assert_eq!(c.acceptable.to_string(), "200-399");
    assert_eq!(
        h.live.as_ref().expect("live").failure_codes.to_string(),
        "500, 502-504"
    );
    assert_eq!(h.min_servers, 0);
    let off = farm("    live_traffic:\n      failover_period: 0\n");
    let snap = load_str(&off, "f.yaml", &StateRegistry::default()).expect("valid");
    assert!(snap.farms[0].health.live.is_none());
}

#[test]
fn mistakes_are_placed_and_explained() {
    let e = errors("    health_check:\n      url: /health\n      acceptable_status: \"200-abc\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("f.yaml:10:26: farms[0].health_check.acceptable_status: \"abc\""),
        "{e:?}"
    );
    let e = errors("    health_check:\n      url: health\n");
    assert!(
        e[0].starts_with("f.yaml:9:12: farms[0].health_check.url:"),
        "{e:?}"
    );
    let e = errors("    health_check:\n      url: /h\n      method: POST\n");
    assert!(
        e[0].contains("health_check.method: unsupported method \"POST\""),
        "{e:?}"
    );
    let e =
        errors("    health_check:\n      url: /h\n      method: HEAD\n      response_match: OK\n");
    assert!(
        e[0].contains("health_check.response_match: a HEAD response has no body"),
        "{e:?}"
    );
    let e = errors("    health_check:\n      url: /h\n      healthy_threshold: 0\n");
    assert!(
        e[0].contains("health_check.healthy_threshold: must be at least 1"),
        "{e:?}"
    );
    let e = errors("    health_check:\n      url: /h\n      interval: 0\n");
    assert!(
        e[0].contains("health_check.interval: must be greater than 0"),
        "{e:?}"
    );
    let e = errors("    min_servers: 3\n");
    assert!(
        e[0].contains("farms[0].min_servers: min_servers is 3 but farm \"web\" has only 2"),
        "{e:?}"
    );
    let e = errors("    live_traffic:\n      failure_codes: \"5xx\"\n");
    assert!(
        e[0].contains("live_traffic.failure_codes: \"5xx\""),
        "{e:?}"
    );
    let e = errors("    health_check:\n      url: /h\n      intervall: 5s\n");
    assert!(e[0].contains("unknown field `intervall`"), "{e:?}");
}
