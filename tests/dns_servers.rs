//! Servers by DNS name, through the real binary: a server whose address
//! names a host becomes one member per address the name resolves to
//! (`resolve: {hosts_file}` is the resolver the test controls), members
//! follow the answer as it changes, a removed address drains without a
//! failed request, and a failed lookup keeps the last answer.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::admin::{server, status_json_at, Scrape};
use common::{client, get, text_response, wait_until, Backend, Handler};
use process::{bin, free_port, Proc};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Answers its name; `/slow` waits for a permit of `gate` first.
fn gated(name: &str, gate: Arc<Semaphore>, slow_in: Arc<AtomicUsize>) -> Handler {
    let name = name.to_string();
    Arc::new(move |req| {
        let (name, gate, slow_in) = (name.clone(), gate.clone(), slow_in.clone());
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                slow_in.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.unwrap().forget();
            }
            text_response(200, name)
        })
    })
}

struct Pair {
    one: Backend,
    two: Backend,
    port: u16,
}

/// Two backends on the same port, one on 127.0.0.1 and one on 127.0.0.2,
/// answering with `handler(name)`.
async fn pair(handler: impl Fn(&str) -> Handler) -> Pair {
    for _ in 0..20 {
        let one = Backend::with_handler("one", handler("one")).await;
        let port = one.addr.port();
        let at: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        if let Ok(two) = Backend::with_handler_at("two", at, handler("two")).await {
            return Pair { one, two, port };
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// Replaces the hosts file at once (a reader never sees it half-written).
fn write_hosts(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(listen: SocketAddr, admin: SocketAddr, port: u16) -> String {
    format!(
        "listeners:\n  - name: public\n    bind: \"{listen}\"\n\
         admin:\n  bind: \"{admin}\"\n\
         log:\n  access: off\n\
         resolve:\n  hosts_file: hosts\n  system: false\n\
         proxy:\n  preserve_host: false\n\
         farms:\n  - name: api\n    algorithm: round_robin\n    resolve_interval: 100ms\n    servers:\n\
         \x20     - address: \"api.test:{port}\"\n"
    )
}

/// The member names of farm `api` in a status document.
fn members(st: &serde_json::Value) -> Vec<String> {
    st["farms"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_two_addresses_then_one_drains_the_removed_address() {
    let gate = Arc::new(Semaphore::new(0));
    let slow: [Arc<AtomicUsize>; 2] = Default::default();
    let b = pair(|name| {
        let i = usize::from(name == "two");
        gated(name, gate.clone(), slow[i].clone())
    })
    .await;
    let port = b.port;
    let dir = common::fresh_temp_dir("farmgate-dns");
    let hosts = dir.join("hosts");
    write_hosts(&hosts, "127.0.0.1 api.test\n127.0.0.2 api.test\n");
    let (listen, admin) = (free_port(), free_port());
    let cfg = dir.join("farmgate.yaml");
    std::fs::write(&cfg, config(listen, admin, port)).unwrap();
    let _fg = Proc::run(&cfg, listen).await;
    let c = client();
    let m1 = format!("api.test:{port}#127.0.0.1:{port}");
    let m2 = format!("api.test:{port}#127.0.0.2:{port}");

    // Both addresses are members, named stably, and share the load.
    let st = status_json_at(admin).await;
    assert_eq!(members(&st), [m1.clone(), m2.clone()], "{st:#}");
    let resolved = &server(&st, "api", &m2)["resolved"];
    assert_eq!(resolved["host"], "api.test");
    assert_eq!(resolved["address"], format!("127.0.0.2:{port}"));
    assert_eq!(resolved["server"], format!("api.test:{port}"));
    assert_eq!(
        st["names"][0]["addresses"],
        serde_json::json!(["127.0.0.1", "127.0.0.2"])
    );
    let url = format!("http://{listen}/");
    for _ in 0..20 {
        let (status, _, _) = get(&c, &url).await;
        assert_eq!(status, 200);
    }
    assert_eq!((b.one.hits(), b.two.hits()), (10, 10));
    // The Host header is the address as written, as for any server.
    assert_eq!(
        b.two.last_seen().headers["host"],
        format!("api.test:{port}")
    );

    // A request in flight on each address, and steady traffic meanwhile.
    let send_slow = |c: common::TestClient| {
        let url = format!("http://{listen}/slow");
        tokio::spawn(async move { get(&c, &url).await })
    };
    let (s1, s2) = (send_slow(client()), send_slow(client()));
    wait_until(
        Duration::from_secs(10),
        "a slow request on each address",
        || async { slow[0].load(Ordering::SeqCst) == 1 && slow[1].load(Ordering::SeqCst) == 1 },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failed, sent, url) = (stop.clone(), failed.clone(), sent.clone(), url.clone());
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                let (status, _, _) = get(&c, &url).await;
                sent.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let before = server(&status_json_at(admin).await, "api", &m1)["requests"]
        .as_u64()
        .unwrap();

    // The name now has one address: its member stays, the other leaves.
    write_hosts(&hosts, "127.0.0.1 api.test\n");
    wait_until(
        Duration::from_secs(10),
        "the removed address to leave",
        || async { members(&status_json_at(admin).await) == [m1.clone()] },
    )
    .await;
    let two_at_removal = b.two.hits();
    let sent_at_removal = sent.load(Ordering::SeqCst);
    wait_until(
        Duration::from_secs(10),
        "traffic after the removal",
        || async { sent.load(Ordering::SeqCst) >= sent_at_removal + 20 },
    )
    .await;
    // The request in flight on the removed address finishes there.
    gate.add_permits(2);
    let (st1, _, body1) = s1.await.unwrap();
    let (st2, _, body2) = s2.await.unwrap();
    assert_eq!((st1.as_u16(), st2.as_u16()), (200, 200));
    let mut bodies = [body1, body2];
    bodies.sort();
    assert_eq!(bodies, ["one", "two"]);
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during the change"
    );
    // No new request reached the removed address (at most one picked it
    // just before the new snapshot was swapped in).
    assert!(b.two.hits() <= two_at_removal + 1);
    let two_after = b.two.hits();
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await.2, "one");
    }
    assert_eq!(b.two.hits(), two_after);
    // The surviving member kept its counters across the re-resolution.
    let st = status_json_at(admin).await;
    assert!(server(&st, "api", &m1)["requests"].as_u64().unwrap() > before + 10);

    // A failed lookup keeps the last answer, and is counted.
    write_hosts(&hosts, "127.0.0.9 other.test\n");
    wait_until(
        Duration::from_secs(10),
        "the failed lookup to show",
        || async { status_json_at(admin).await["names"][0]["failing"] == true },
    )
    .await;
    let st = status_json_at(admin).await;
    assert_eq!(members(&st), std::slice::from_ref(&m1));
    let error = st["names"][0]["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("not listed in "), "{error}");
    assert_eq!(get(&c, &url).await.0, 200);
    let (_, _, body) = get(&c, &format!("http://{admin}/metrics")).await;
    let m = Scrape::parse(&body);
    assert!(
        m.value(
            "farmgate_dns_lookups_total",
            &[("name", "api.test"), ("result", "failed")]
        ) >= 1.0
    );
    assert_eq!(
        m.value("farmgate_dns_addresses", &[("name", "api.test")]),
        1.0
    );

    // The address comes back: it joins again.
    write_hosts(&hosts, "127.0.0.2 api.test\n127.0.0.1 api.test\n");
    wait_until(
        Duration::from_secs(10),
        "the address to join again",
        || async { members(&status_json_at(admin).await) == [m1.clone(), m2.clone()] },
    )
    .await;
    let two_back = b.two.hits();
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await.0, 200);
    }
    assert!(b.two.hits() > two_back);
}

#[test]
fn check_warns_on_a_name_that_does_not_resolve_and_places_bad_hosts_lines() {
    let dir = common::fresh_temp_dir("farmgate-dns-check");
    std::fs::write(dir.join("hosts"), "127.0.0.1 api.test\n").unwrap();
    let cfg = dir.join("farmgate.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  - bind: \"127.0.0.1:0\"\n\
         resolve:\n  hosts_file: hosts\n  system: false\n\
         farms:\n  - name: api\n    servers:\n\
         \x20     - address: \"api.test:8080\"\n\
         \x20     - address: \"http://nowhere.test:8080\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let warning = format!(
        "warning: {}:10:18: farms[0].servers[1].address: nowhere.test does not resolve now",
        cfg.display()
    );
    assert!(stdout.contains(&warning), "{stdout}");
    assert!(
        stdout.contains("ok: 1 listener(s), 1 farm(s), 2 server(s)"),
        "{stdout}"
    );

    std::fs::write(dir.join("hosts"), "127.0.0.1 api.test\nfe80::zz api.test\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("resolve.hosts_file:")
            && stderr.contains("line 2: \"fe80::zz\" is not an IP address"),
        "{stderr}"
    );
}

/// Answers its name; `/health` answers 503 while `sick` is set.
fn checked(name: &str, sick: Arc<AtomicBool>) -> Handler {
    let name = name.to_string();
    Arc::new(move |req| {
        let (name, sick) = (name.clone(), sick.clone());
        Box::pin(async move {
            if req.uri().path() == "/health" && sick.load(Ordering::SeqCst) {
                return text_response(503, "sick");
            }
            text_response(200, name)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_joins_through_the_health_checks() {
    let sick = Arc::new(AtomicBool::new(true));
    let b = pair(|name| {
        let sick = if name == "two" {
            sick.clone()
        } else {
            Arc::new(AtomicBool::new(false))
        };
        checked(name, sick)
    })
    .await;
    let port = b.port;
    let dir = common::fresh_temp_dir("farmgate-dns-join");
    let hosts = dir.join("hosts");
    write_hosts(&hosts, "127.0.0.1 api.test\n");
    let cfg = common::admin::with_admin(
        &common::farm_config("round_robin", &[], "", ""),
        None,
    )
    .replace(
        "    servers:\n",
        &format!(
            "    resolve_interval: 50ms\n    health_check:\n      url: /health\n      interval: 50ms\n      healthy_threshold: 2\n    servers:\n      - address: \"api.test:{port}\"\n"
        ),
    ) + &format!("resolve:\n  hosts_file: \"{}\"\n  system: false\n", hosts.display());
    let fg = common::start(&cfg).await;
    let c = client();
    let m2 = format!("api.test:{port}#127.0.0.2:{port}");
    assert_eq!(members(&common::admin::status_json(&c, &fg).await).len(), 1);

    // The new address is a member at once, but out of rotation until its
    // checks pass: traffic stays on the first.
    write_hosts(&hosts, "127.0.0.1 api.test\n127.0.0.2 api.test\n");
    wait_until(
        Duration::from_secs(10),
        "the new address to join",
        || async { members(&common::admin::status_json(&c, &fg).await).contains(&m2) },
    )
    .await;
    let st = common::admin::status_json(&c, &fg).await;
    let joined = server(&st, "web", &m2);
    assert_eq!(joined["healthy"], false, "{joined:#}");
    assert_eq!(joined["health"]["reason_code"], "joined", "{joined:#}");
    let url = format!("http://{}/", fg.first_addr());
    for _ in 0..10 {
        assert_eq!(get(&c, &url).await.2, "one");
    }
    let served = |b: &Backend| {
        b.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.uri.path() == "/")
            .count()
    };
    assert_eq!(served(&b.two), 0);

    // Its checks pass: it takes its share.
    sick.store(false, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(10),
        "the joined member to pass its checks",
        || async {
            server(&common::admin::status_json(&c, &fg).await, "web", &m2)["healthy"] == true
        },
    )
    .await;
    let mut bodies = Vec::new();
    for _ in 0..10 {
        bodies.push(get(&c, &url).await.2);
    }
    assert!(bodies.iter().any(|b| b == "two"), "{bodies:?}");

    // The server's own name acts on all its members.
    let path = format!("/api/farms/web/servers/api.test%3A{port}/drain");
    let (status, _, body) = common::admin::admin_post(&c, &fg, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["members"].as_array().unwrap().len(), 2, "{doc:#}");
    let st = common::admin::status_json(&c, &fg).await;
    for m in members(&st) {
        assert_eq!(server(&st, "web", &m)["admin"], "draining");
    }
}
