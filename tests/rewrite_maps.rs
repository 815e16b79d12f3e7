//! Rewrite maps end to end through real sockets: a 100,000-line redirect
//! map in a file, looked up by a rule condition, answering redirects; a map
//! choosing the backend path of a route; and the map file edited while
//! farmgate runs, picked up by the config watcher.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use http::StatusCode;
use std::fmt::Write;
use std::time::Duration;

const ENTRIES: usize = 100_000;

fn redirect_lines(n: usize, extra: &str) -> String {
    let mut text = String::with_capacity(n * 40);
    text.push_str("# old path, new path\n");
    for i in 0..n {
        writeln!(text, "/old/Page-{i} /new/page-{i}").unwrap();
    }
    text.push_str(extra);
    text
}

fn config(backend: &Backend) -> String {
    format!(
        "listeners: [ {{ name: public, bind: \"127.0.0.1:0\" }} ]
admin: {{ enabled: false }}
log: {{ access: off }}
farms:
  - name: web
    servers: [ {{ address: \"{}\" }} ]
rewrite_maps:
  - name: Redirects
    file: maps/redirects.txt
  - name: Sections
    default: /home
    entries: {{ news: /press, shop: /store }}
rules:
  - name: moved pages
    match: '^/old/'
    conditions: [ {{ input: '{{Redirects:{{URL}}}}', pattern: '.+' }} ]
    action: {{ redirect: {{ url: '{{C:0}}', append_query_string: false }} }}
  - name: sections
    match: '^/s/([^/]+)(/.*)?$'
    action: {{ route: {{ url: '{{Sections:{{R:1}}}}{{R:2}}' }} }}
",
        backend.addr
    )
}

#[tokio::test]
async fn a_large_redirect_map_answers_and_is_reloaded_when_its_file_changes() {
    let backend = Backend::named("web").await;
    let dir = fresh_temp_dir("farmgate-maps");
    std::fs::create_dir_all(dir.join("maps")).unwrap();
    std::fs::write(dir.join("maps/redirects.txt"), redirect_lines(ENTRIES, "")).unwrap();
    let cfg = dir.join("farmgate.yaml");
    std::fs::write(&cfg, config(&backend)).unwrap();
    let fg = start_from_file(&cfg).await;
    let snap = fg.gateway.snapshot();
    assert_eq!(
        snap.rules.maps().get("Redirects").unwrap().len(),
        ENTRIES,
        "every line of the file is an entry"
    );
    drop(snap);

    let base = format!("http://{}", fg.first_addr());
    let http = client();
    // Keys compare without regard to case, as in IIS.
    for (path, want) in [
        ("/old/Page-77777", "/new/page-77777"),
        ("/OLD/page-0", "/new/page-0"),
        ("/old/page-99999?utm=x", "/new/page-99999"),
    ] {
        let (status, headers, _) = get(&http, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(headers["location"], want, "{path}");
    }
    // Not in the map: the condition fails and the request is proxied.
    let (status, _, body) = get(&http, &format!("{base}/old/unknown")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "web"));
    assert_eq!(backend.last_seen().uri.path(), "/old/unknown");

    // A map in a route URL, with its default for keys it lacks.
    for (path, seen) in [
        ("/s/news/2024", "/press/2024"),
        ("/s/SHOP", "/store"),
        ("/s/other/x", "/home/x"),
    ] {
        let (status, _, _) = get(&http, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(backend.last_seen().uri.path(), seen, "{path}");
    }

    // The map file changes (renamed over, as deploy tools do): the watcher
    // reloads the config with it.
    let tmp = dir.join("maps/redirects.tmp");
    std::fs::write(
        &tmp,
        redirect_lines(ENTRIES, "/old/fresh https://www.example.com/fresh\n"),
    )
    .unwrap();
    std::fs::rename(&tmp, dir.join("maps/redirects.txt")).unwrap();
    let url = format!("{base}/old/fresh");
    wait_until(Duration::from_secs(10), "the new map entry serves", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let (status, headers, _) = get(&http, &url).await;
            status == StatusCode::MOVED_PERMANENTLY
                && headers["location"] == "https://www.example.com/fresh"
        }
    })
    .await;
    assert_eq!(fg.gateway.reloads.last().unwrap().trigger, "file");

    // A broken map file is refused with its line; the old map keeps serving.
    std::fs::write(&tmp, redirect_lines(10, "/old/a /x\n/old/A /y\n")).unwrap();
    std::fs::rename(&tmp, dir.join("maps/redirects.txt")).unwrap();
    wait_until(Duration::from_secs(10), "the broken map is refused", || {
        let fg = &fg;
        async move { fg.gateway.reloads.last().is_some_and(|e| !e.ok) }
    })
    .await;
    let refused = fg.gateway.reloads.last().unwrap().message;
    assert!(
        refused.contains("redirects.txt:13: duplicate key \"/old/A\" (first on line 12)"),
        "{refused}"
    );
    let (status, headers, _) = get(&http, &format!("{base}/old/page-12345")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "/new/page-12345");
    std::fs::remove_dir_all(&dir).ok();
}
