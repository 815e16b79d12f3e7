//! Reload latency: from writing the config file to the new config serving.
//! Runs farmgate in-process with its file watcher, flips the farm between two
//! demo backends 20 times, and prints median, p90 and max.
//! `cargo bench --bench reload_latency`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use farmgate::farm::StateRegistry;
use farmgate::Running;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        "listeners:\n  - bind: \"127.0.0.1:0\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
         farms:\n  - name: web\n    servers:\n      - address: \"{backend}\"\n"
    )
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut backends = Vec::new();
        for name in ["one", "two"] {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            backends.push((name, l.local_addr().unwrap()));
            farmgate::demo::spawn_backend(name, l);
        }
        let dir = std::env::temp_dir().join(format!("farmgate-reload-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("farmgate.yaml");
        std::fs::write(&path, config(backends[0].1)).unwrap();
        let registry = Arc::new(StateRegistry::default());
        let snap = farmgate::config::load_file(&path, &registry).unwrap();
        let fg = Running::start_watching(snap, registry, path.clone()).await.unwrap();
        let url = format!("http://{}/", fg.first_addr());
        let http: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut samples = Vec::new();
        for i in 1..=20 {
            let (name, addr) = backends[i % 2];
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, config(addr)).unwrap();
            let written = Instant::now();
            std::fs::rename(&tmp, &path).unwrap();
            loop {
                let resp = http.get(url.parse().unwrap()).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                if String::from_utf8_lossy(&body).contains(name) {
                    break;
                }
                assert!(written.elapsed() < Duration::from_secs(10), "reload never served");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples.push(written.elapsed());
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "reload latency (file write -> new config serving), 20 reloads: median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            ms(samples[10]),
            ms(samples[18]),
            ms(samples[19])
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
