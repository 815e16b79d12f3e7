//! ACME in tier mode: two real farmgate processes sharing one real
//! redis-server order one certificate from a real pebble. Exactly one
//! order is placed, both instances serve the issued certificate (verified
//! against pebble's root), and pebble's HTTP-01 validation is sent to the
//! instance that did NOT place the order, which answers it from the tier.
//! With ARI (pebble behind `common/ari_front.rs`), a near renewal window
//! gives one replacing order for the tier, long before two thirds.
#![allow(clippy::unwrap_used)]

#[path = "common/ari_front.rs"]
mod ari_front;
mod common;
#[path = "common/pebble.rs"]
mod pebble;
#[path = "common/process.rs"]
mod process;
#[path = "common/redis.rs"]
mod redis_server;
#[path = "common/tls.rs"]
mod tls;

use ari_front::{near_then_later, AriFront, Policy};
use common::admin::status_json_at;
use common::*;
use pebble::Pebble;
use process::{free_port, Proc};
use redis_server::RedisServer;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tls::{connect, peer_cert, peer_names};

const DOMAIN: &str = "tier.farmgate.test";
const TIER: &str = "acmetier";

/// One farmgate process of the tier.
struct Instance {
    id: &'static str,
    plain: SocketAddr,
    tls: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    dir: PathBuf,
    _proc: Proc,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Kept after a failure: the log is in it.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The config of instance `id`: a plain listener (HTTP-01), a TLS
/// listener managing DOMAIN, the admin API and the tier on `redis`.
fn config(
    id: &str,
    challenge: &str,
    (plain, tls, admin): (SocketAddr, SocketAddr, SocketAddr),
    (directory, ca): (&str, &std::path::Path),
    redis: &RedisServer,
    backend: &Backend,
    storage: &std::path::Path,
) -> String {
    format!(
        "listeners:\n  - name: plain\n    bind: \"{plain}\"\n\
         \x20 - name: secure\n    bind: \"{tls}\"\n    tls:\n      acme:\n\
         \x20       directory: \"{dir}\"\n        contact: [\"mailto:ops@example.com\"]\n\
         \x20       domains: [\"{DOMAIN}\"]\n        challenge: {challenge}\n\
         \x20       storage: \"{storage}\"\n        ca: \"{ca}\"\n\
         admin:\n  bind: \"{admin}\"\nlog:\n  access: off\n\
         cluster:\n  redis: \"{redis}\"\n  name: {TIER}\n  instance: {id}\n  heartbeat_interval: 300ms\n\
         farms:\n  - name: web\n    servers:\n      - {{ name: app, address: \"{backend}\" }}\n",
        dir = directory,
        storage = storage.display(),
        ca = ca.display(),
        redis = redis.url(),
        backend = backend.addr,
    )
}

impl Instance {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This instance's `tls.acme` status from `/api/status`.
    async fn acme(&self) -> serde_json::Value {
        let st = status_json_at(self.admin).await;
        st["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "secure")
            .map(|l| l["tls"]["acme"].clone())
            .unwrap()
    }
}

/// Starts the instances `ids` at once (both race for the order).
async fn start_tier(
    ids: [&'static str; 2],
    challenge: &str,
    (pebble, directory): (&Pebble, &str),
    redis: &RedisServer,
    backend: &Backend,
) -> Vec<Instance> {
    let mut started = Vec::new();
    for id in ids {
        let ports = (free_port(), free_port(), free_port());
        let dir = fresh_temp_dir(&format!("farmgate-acme-tier-{id}"));
        let path = dir.join("farmgate.yaml");
        let text = config(
            id,
            challenge,
            ports,
            (directory, &pebble.listener_ca),
            redis,
            backend,
            &dir.join("storage"),
        );
        std::fs::write(&path, text).unwrap();
        let log = dir.join("farmgate.log");
        let child = Command::new(process::bin())
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        started.push((id, ports, dir, log, child));
    }
    let mut tier = Vec::new();
    for (id, (plain, tls, admin), dir, log, child) in started {
        tier.push(Instance {
            id,
            plain,
            tls,
            admin,
            log,
            dir,
            _proc: Proc::wait_listening(child, tls).await,
        });
    }
    tier
}

/// Pebble's HTTP-01 port: each validation connection goes to the instance
/// that does NOT hold the tier's order lock right then (read from Redis),
/// and is recorded as (lock holder, instance it went to).
struct Relay {
    routed: Arc<Mutex<Vec<(String, &'static str)>>>,
}

impl Relay {
    async fn start(
        addr: SocketAddr,
        redis: &RedisServer,
        instances: [(&'static str, SocketAddr); 2],
    ) -> Relay {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let routed = Arc::new(Mutex::new(Vec::new()));
        let log = routed.clone();
        let client = redis::Client::open(redis.url()).unwrap();
        let lock = format!("farmgate:{TIER}:acme:lock:{DOMAIN}");
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // A connection per validation: the test may restart Redis.
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let holder: Option<String> = redis::cmd("GET")
                    .arg(&lock)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let holder = holder
                    .and_then(|h| h.split(' ').next().map(str::to_string))
                    .unwrap_or_default();
                let (to, target) = instances.into_iter().find(|(id, _)| *id != holder).unwrap();
                log.lock().unwrap().push((holder, to));
                tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Relay { routed }
    }
}

async fn verifying_client(p: &Pebble) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(p.root().await)
            .with_no_client_auth(),
    )
}

/// The certificate `addr` serves for DOMAIN to a client trusting only
/// pebble's root, once it does (None before `deadline`).
async fn issued_cert(
    addr: SocketAddr,
    client: &Arc<ClientConfig>,
    deadline: Instant,
) -> Option<CertificateDer<'static>> {
    loop {
        if let Ok(conn) = connect(addr, DOMAIN, client.clone()).await {
            assert_eq!(peer_names(&conn), [DOMAIN]);
            return Some(peer_cert(&conn));
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis, pebble issuing `validity_secs` certificates, the two instances
/// `a` and `b` started at once, and the relay in front of them on the port
/// pebble validates `challenge` at (their plain listeners for HTTP-01,
/// their TLS listeners for TLS-ALPN-01).
struct Setup {
    redis: RedisServer,
    pebble: Pebble,
    tier: Vec<Instance>,
    relay: Relay,
    client: Arc<ClientConfig>,
    _backend: Backend,
    /// The ARI front before pebble, when the test has one.
    front: Option<AriFront>,
}

impl Setup {
    async fn start(validity_secs: u64, challenge: &str) -> Setup {
        Setup::start_on(RedisServer::start().await, validity_secs, challenge).await
    }

    async fn start_on(redis: RedisServer, validity_secs: u64, challenge: &str) -> Setup {
        Setup::start_with(redis, validity_secs, challenge, None).await
    }

    /// [`Setup::start_on`] with, given an ARI `policy`, the instances'
    /// directory behind an [`AriFront`] answering renewalInfo by it.
    async fn start_with(
        redis: RedisServer,
        validity_secs: u64,
        challenge: &str,
        policy: Option<Policy>,
    ) -> Setup {
        let backend = Backend::named("app").await;
        let (relay_addr, unused) = (free_port(), free_port().port());
        let pebble = match challenge {
            "http-01" => Pebble::start(relay_addr.port(), unused, validity_secs).await,
            _ => Pebble::start(unused, relay_addr.port(), validity_secs).await,
        };
        let front = match policy {
            Some(p) => Some(AriFront::start(&pebble, p).await),
            None => None,
        };
        let directory = front
            .as_ref()
            .map_or_else(|| pebble.directory.clone(), |f| f.directory.clone());
        let tier = start_tier(
            ["a", "b"],
            challenge,
            (&pebble, &directory),
            &redis,
            &backend,
        )
        .await;
        let target = |i: &Instance| match challenge {
            "http-01" => (i.id, i.plain),
            _ => (i.id, i.tls),
        };
        let relay = Relay::start(relay_addr, &redis, [target(&tier[0]), target(&tier[1])]).await;
        let client = verifying_client(&pebble).await;
        Setup {
            redis,
            pebble,
            tier,
            relay,
            client,
            _backend: backend,
            front,
        }
    }

    /// Every log, for failure messages.
    fn logs(&self) -> String {
        format!(
            "\n--- a:\n{}\n--- b:\n{}\n--- pebble:\n{}",
            self.tier[0].log(),
            self.tier[1].log(),
            self.pebble.log()
        )
    }

    /// Waits until one instance serves a certificate pebble issued other
    /// than `old`, then requires the other to serve the same one within
    /// 5 s (announced through the tier); returns it.
    async fn wait_for_new(&self, old: Option<&CertificateDer<'static>>) -> CertificateDer<'static> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let new = loop {
            let mut found = None;
            for i in &self.tier {
                if let Some(c) = issued_cert(i.tls, &self.client, Instant::now()).await {
                    if Some(&c) != old {
                        found = Some(c);
                    }
                }
            }
            if let Some(c) = found {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "no new certificate{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for i in &self.tier {
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let served = issued_cert(i.tls, &self.client, Instant::now()).await;
                if served.as_ref() == Some(&new) {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "instance {} must serve the tier's new certificate within 5 s{}",
                    i.id,
                    self.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        new
    }

    /// Orders placed by each instance (`orders_total`), checking both run
    /// in tier mode.
    async fn orders(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        for i in &self.tier {
            let st = i.acme().await;
            assert_eq!(st["tier"], true, "{st}");
            out.push((i.id, st["orders_total"].as_u64().unwrap()));
        }
        out
    }

    fn orders_at_pebble(&self) -> usize {
        self.pebble.log().matches("Added order").count()
    }
}

/// One order for the two instances; the validation reaches the one that
/// did not order and succeeds there; both serve the certificate.
async fn one_order_for_the_tier(challenge: &str) {
    let s = Setup::start(3600, challenge).await;
    s.wait_for_new(None).await;
    for i in &s.tier {
        let st = i.acme().await;
        assert_eq!(st["state"], "valid", "{st}");
    }

    // Exactly one order, placed by one instance; the other installed it.
    let orders = s.orders().await;
    assert_eq!(
        orders.iter().map(|o| o.1).sum::<u64>(),
        1,
        "{orders:?}{}",
        s.logs()
    );
    assert_eq!(s.orders_at_pebble(), 1, "{}", s.logs());
    let orderer = orders.iter().find(|o| o.1 == 1).unwrap().0;
    let other = orders.iter().find(|o| o.1 == 0).unwrap().0;

    // Pebble's validation went to the instance that did not order, and
    // succeeded there (the certificate was issued).
    let routed = s.relay.routed.lock().unwrap().clone();
    assert!(!routed.is_empty(), "pebble never validated{}", s.logs());
    for (holder, to) in &routed {
        assert_eq!(
            (holder.as_str(), *to),
            (orderer, other),
            "a validation while {orderer} held the lock must go to {other}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_one_order_and_the_other_instance_answers_the_validation() {
    one_order_for_the_tier("http-01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_one_order_and_the_other_instance_answers_the_validation() {
    one_order_for_the_tier("tls-alpn-01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holders_lease_runs_out_then_one_instance_orders() {
    // What an instance that died mid-order leaves: its lock, with a lease.
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let lock = format!("farmgate:{TIER}:acme:lock:{DOMAIN}");
    let () = redis::cmd("SET")
        .arg(&lock)
        .arg("ghost 0123456789abcdef")
        .arg("PX")
        .arg(3000)
        .query_async(&mut c)
        .await
        .unwrap();
    let s = Setup::start_on(redis, 3600, "http-01").await;
    // No order while the lease holds (both instances wait, not fail) ...
    let mut held = Vec::new();
    loop {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&lock)
            .query_async(&mut c)
            .await
            .unwrap();
        let value: Option<String> = redis::cmd("GET")
            .arg(&lock)
            .query_async(&mut c)
            .await
            .unwrap();
        if value.as_deref() != Some("ghost 0123456789abcdef") || ttl <= 0 {
            break;
        }
        held.push(s.orders_at_pebble());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !held.is_empty() && held.iter().all(|n| *n == 0),
        "{held:?}{}",
        s.logs()
    );
    for i in &s.tier {
        let st = i.acme().await;
        assert_eq!(
            st["failures_total"], 0,
            "waiting for a lock is no failure: {st}"
        );
        assert_eq!(
            st["last_result"], "waiting: ghost holds the tier's order lock",
            "{st}"
        );
    }
    // ... then exactly one, and both serve its certificate.
    s.wait_for_new(None).await;
    let orders = s.orders().await;
    assert_eq!(
        orders.iter().map(|o| o.1).sum::<u64>(),
        1,
        "{orders:?}{}",
        s.logs()
    );
    assert_eq!(s.orders_at_pebble(), 1, "{}", s.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_adds_the_tier_shares_the_certificate_without_a_new_order() {
    let redis = RedisServer::start().await;
    let backend = Backend::named("app").await;
    let ports = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(ports.0.port(), free_port().port(), 3600).await;
    let dir = fresh_temp_dir("farmgate-acme-join");
    let alone = config(
        "solo",
        "http-01",
        ports,
        (&pebble.directory, &pebble.listener_ca),
        &redis,
        &backend,
        &dir.join("storage"),
    );
    let cut = alone.find("cluster:").unwrap();
    let end = alone[cut..].find("farms:").unwrap() + cut;
    let (without, tier_section) = (
        format!("{}{}", &alone[..cut], &alone[end..]),
        &alone[cut..end],
    );
    let path = dir.join("farmgate.yaml");
    std::fs::write(&path, &without).unwrap();
    let fg = start_from_file(&path).await;
    let client = verifying_client(&pebble).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = issued_cert(ports.1, &client, deadline)
        .await
        .unwrap_or_else(|| panic!("no certificate issued alone\n{}", pebble.log()));

    // `cluster:` added by a reload: the manager moves to the tier's store,
    // sharing the certificate it serves; nothing is ordered.
    std::fs::write(&path, format!("{without}{tier_section}")).unwrap();
    let status = || {
        farmgate::tls::acme::statuses()
            .snapshot()
            .into_iter()
            .find(|s| s.listener == "secure")
    };
    wait_until(
        Duration::from_secs(10),
        "the manager in tier mode",
        || async { status().is_some_and(|s| s.tier) },
    )
    .await;
    let mut c = redis.conn().await;
    let key = format!("farmgate:{TIER}:acme:store:certs/{DOMAIN}.pem");
    let mut shared: Option<Vec<u8>> = None;
    let until = Instant::now() + Duration::from_secs(10);
    while shared.is_none() && Instant::now() < until {
        shared = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shared.is_some(),
        "the certificate was not shared with the tier"
    );
    let served = issued_cert(ports.1, &client, Instant::now()).await;
    assert_eq!(served, Some(first), "the same certificate keeps serving");
    assert_eq!(
        pebble.log().matches("Added order").count(),
        1,
        "{}",
        pebble.log()
    );
    assert_eq!(status().map(|s| s.orders_total), Some(1));
    fg.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_the_certificate_and_renewal_resumes_after() {
    // 60 s certificates: renewal falls due about 40 s after issue.
    let mut s = Setup::start(60, "http-01").await;
    let first = s.wait_for_new(None).await;

    // Redis goes away before renewal is due: renewal fails on both, the
    // first certificate keeps serving, the outage is logged once and counted.
    s.redis.kill();
    for i in &s.tier {
        wait_until(Duration::from_secs(60), "two failed renewals", || async {
            i.acme().await["consecutive_failures"].as_u64().unwrap() >= 2
        })
        .await;
        let st = i.acme().await;
        assert_eq!(st["state"], "failing", "{st}");
        let served = issued_cert(i.tls, &s.client, Instant::now()).await;
        assert_eq!(
            served.as_ref(),
            Some(&first),
            "the old certificate must keep serving"
        );
        let said = i.log().matches("the tier's Redis is unreachable").count();
        assert_eq!(said, 1, "logged once per outage{}", s.logs());
        let (_, _, text) = get(&client(), &format!("http://{}/metrics", i.admin)).await;
        let scrape = common::admin::Scrape::parse(&text);
        let failed = scrape
            .get(
                "farmgate_cluster_operations_failed_total",
                &[("operation", "acme")],
            )
            .unwrap_or(0.0);
        assert!(failed >= 2.0, "acme Redis failures counted: {failed}");
        let renewal_failures = scrape
            .get(
                "farmgate_acme_renewal_failures_total",
                &[("listener", "secure")],
            )
            .unwrap_or(0.0);
        assert!(renewal_failures >= 2.0, "{renewal_failures}");
    }

    // Redis is back (empty): one instance renews for both.
    s.redis.restart().await;
    let renewed = s.wait_for_new(Some(&first)).await;
    assert_ne!(renewed, first);
    let orders = s.orders().await;
    assert_eq!(
        orders.iter().map(|o| o.1).sum::<u64>(),
        2,
        "{orders:?}{}",
        s.logs()
    );
    assert_eq!(s.orders_at_pebble(), 2, "{}", s.logs());
    for i in &s.tier {
        // Once per outage; on a loaded machine a slow Redis answer can
        // open the breaker again for a moment (a second outage, logged).
        assert!(
            i.log().matches("the tier's Redis answers again").count() >= 1,
            "{}",
            s.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ari_window_gives_the_tier_one_replacing_order_long_before_two_thirds() {
    // 90 s certificates (two thirds: 60 s); the first one's window opens
    // 3 to 6 s after each instance asks, and each picks its own time in it.
    let s = Setup::start_with(
        RedisServer::start().await,
        90,
        "http-01",
        Some(near_then_later()),
    )
    .await;
    let front = s.front.as_ref().unwrap();
    let first = s.wait_for_new(None).await;
    let issued = std::time::SystemTime::now();
    let renewed = s.wait_for_new(Some(&first)).await;
    assert!(
        issued.elapsed().unwrap() < Duration::from_secs(30),
        "renewed {:?} after the first issue, not in the CA's window{}",
        issued.elapsed(),
        s.logs()
    );
    assert_ne!(renewed, first);
    // Both instances asked the CA about the certificate they served ...
    let asked = front.asked();
    let first_id = asked[0].cert_id.clone();
    assert!(
        asked.iter().filter(|a| a.cert_id == first_id).count() >= 2,
        "{asked:?}"
    );
    // ... and the tier placed one order for the renewal, naming it.
    assert_eq!(front.orders(), [None, Some(first_id)], "{}", s.logs());
    assert_eq!(s.orders_at_pebble(), 2, "{}", s.logs());
    let orders = s.orders().await;
    assert_eq!(
        orders.iter().map(|o| o.1).sum::<u64>(),
        2,
        "{orders:?}{}",
        s.logs()
    );
}
