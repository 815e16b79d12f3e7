//! Config composition: `${VAR}` / `${VAR:-default}` from the environment,
//! `include:` of farms, rules and listeners from other files (errors placed
//! in the included file), `*_file` secrets, and the watcher reloading when
//! an included file changes or a new one appears.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::*;
use http::StatusCode;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `farmgate check --config DIR/farmgate.yaml` with `env` set; returns
/// (exit code, stdout + stderr).
fn check(dir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(process::bin());
    cmd.args(["check", "--config"])
        .arg(dir.join("farmgate.yaml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const MAIN: &str = "\
include: [farms/*.yaml, rules.yaml]
listeners:
  - bind: \"${FG_TEST_BIND:-127.0.0.1:0}\"
admin: { enabled: false }
default_farm: ${FG_TEST_DEFAULT_FARM}
";

#[test]
fn variables_and_includes_compose_one_config() {
    let dir = fresh_temp_dir("farmgate-compose");
    write(&dir, "farmgate.yaml", MAIN);
    write(
        &dir,
        "farms/api.yaml",
        "farms:\n  - name: api\n    servers:\n      - { address: \"${FG_TEST_API}:8080\", weight: ${FG_TEST_WEIGHT:-2} }\n",
    );
    write(
        &dir,
        "farms/web.yaml",
        "farms:\n  - name: web\n    servers: [ { address: \"127.0.0.1:9001\" }, { address: \"127.0.0.1:9002\" } ]\n",
    );
    write(&dir, "farms/notes.txt", "not yaml, not matched by *.yaml\n");
    write(
        &dir,
        "rules.yaml",
        "rules:\n  - { match: \"^/api/\", action: { route: { farm: api } } }\n",
    );
    let env = [("FG_TEST_API", "10.0.0.7"), ("FG_TEST_DEFAULT_FARM", "web")];
    let (code, out) = check(&dir, &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 listener(s), 2 farm(s), 3 server(s), 1 rule(s)"),
        "{out}"
    );

    // An undefined variable without a default: file, line and column.
    let (code, out) = check(&dir, &[("FG_TEST_API", "10.0.0.7")]);
    assert_eq!(code, 1, "{out}");
    let main = dir.join("farmgate.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{main}:5:15: environment variable FG_TEST_DEFAULT_FARM is not set"
        )),
        "{out}"
    );
    let (_, out) = check(&dir, &[("FG_TEST_DEFAULT_FARM", "web")]);
    let api = dir.join("farms/api.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{api}:4:21: environment variable FG_TEST_API is not set"
        )),
        "{out}"
    );

    // A problem found after merging is placed in the included file, with
    // the index the entry has there.
    write(
        &dir,
        "rules.yaml",
        "rules:\n  - { match: \"^/api/\", action: { route: { farm: api } } }\n  - { match: \"^/b/\", action: { route: { farm: billing } } }\n",
    );
    let (code, out) = check(&dir, &env);
    assert_eq!(code, 1, "{out}");
    let rules = dir.join("rules.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{rules}:3:47: rules[1].action.route.farm: unknown farm \"billing\""
        )),
        "{out}"
    );
    // A duplicate across files names the second file.
    write(&dir, "rules.yaml", "rules: []\n");
    write(
        &dir,
        "farms/web2.yaml",
        "farms:\n  - name: web\n    servers: [ { address: \"127.0.0.1:9003\" } ]\n",
    );
    let (_, out) = check(&dir, &env);
    let web2 = dir.join("farms/web2.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{web2}:2:11: farms[0].name: duplicate farm name \"web\""
        )),
        "{out}"
    );
    std::fs::remove_file(dir.join("farms/web2.yaml")).unwrap();

    // A type error in an included file is that file's, at its line.
    write(
        &dir,
        "farms/web.yaml",
        "farms:\n  - name: web\n    servers: [ { address: \"127.0.0.1:9001\", weight: heavy } ]\n",
    );
    let (_, out) = check(&dir, &env);
    let web = dir.join("farms/web.yaml").display().to_string();
    assert!(
        out.contains(&format!("{web}:3:")) && out.contains("weight: expected a whole number"),
        "{out}"
    );
    // Keys other than listeners, farms, rules and rewrite_maps are refused.
    write(&dir, "farms/web.yaml", "default_farm: web\n");
    let (_, out) = check(&dir, &env);
    assert!(
        out.contains(&format!("{web}:1:1: unknown field `default_farm`")),
        "{out}"
    );
    // A named file that does not exist.
    write(
        &dir,
        "farmgate.yaml",
        &MAIN.replace("rules.yaml", "missing.yaml"),
    );
    let (_, out) = check(&dir, &env);
    assert!(
        out.contains("included file") && out.contains("missing.yaml does not exist"),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn secrets_can_come_from_files() {
    let dir = fresh_temp_dir("farmgate-secret-file");
    write(&dir, "affinity.secret", "s3cret\n");
    let farm = |affinity: &str| {
        format!(
            "listeners: [ {{ bind: \"127.0.0.1:0\" }} ]\nadmin: {{ enabled: false }}\n\
             farms:\n  - name: web\n    servers: [ {{ name: a, address: \"127.0.0.1:9001\" }} ]\n    \
             affinity: {{ cookie: FG, {affinity} }}\n"
        )
    };
    let load = |text: String| {
        farmgate::config::load_str(&text, "f.yaml", &farmgate::farm::StateRegistry::default())
    };
    let cookie = |text: String| {
        let snap = load(text).unwrap();
        format!("{:?}", snap.farms[0].affinity)
    };
    let file = dir.join("affinity.secret").display().to_string();
    assert_eq!(
        cookie(farm(&format!("secret_file: \"{file}\""))),
        cookie(farm("secret: s3cret")),
        "a secret read from a file is the same secret"
    );
    assert_ne!(
        cookie(farm("secret: s3cret")),
        cookie(farm("secret: other"))
    );
    let e = load(farm(&format!("secret: x, secret_file: \"{file}\""))).unwrap_err();
    assert!(
        e.to_string()
            .contains("farms[0].affinity.secret_file: give either farms[0].affinity.secret or farms[0].affinity.secret_file, not both"),
        "{e}"
    );
    let e = load(farm("secret_file: /nonexistent/secret")).unwrap_err();
    assert!(
        e.to_string()
            .contains("farms[0].affinity.secret_file: cannot read /nonexistent/secret"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn the_watcher_reloads_when_an_included_file_changes_or_appears() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let dir = fresh_temp_dir("farmgate-include-watch");
    write(
        &dir,
        "farmgate.yaml",
        "include: [farms/*.yaml]\nlisteners: [ { bind: \"${FG_TEST_UNSET_BIND:-127.0.0.1:0}\" } ]\n\
         admin: { enabled: false }\nlog: { access: off }\ndefault_farm: web\n\
         rules:\n  - { match: \"^/other/\", action: { route: { farm: other } } }\n",
    );
    let web = |addr: std::net::SocketAddr| {
        format!("farms:\n  - name: web\n    servers: [ {{ address: \"{addr}\" }} ]\n")
    };
    write(&dir, "farms/web.yaml", &web(a.addr));
    write(
        &dir,
        "farms/other.yaml",
        &format!(
            "farms:\n  - name: other\n    servers: [ {{ address: \"{}\" }} ]\n",
            a.addr
        ),
    );
    let fg = start_from_file(&dir.join("farmgate.yaml")).await;
    let base = format!("http://{}", fg.first_addr());
    let http = client();
    assert_eq!(get(&http, &format!("{base}/")).await.2, "a");

    // The included file changes: the watcher reloads.
    let tmp = dir.join("farms/web.tmp");
    std::fs::write(&tmp, web(b.addr)).unwrap();
    std::fs::rename(&tmp, dir.join("farms/web.yaml")).unwrap();
    wait_until(Duration::from_secs(10), "the edited include serves", || {
        let (http, base) = (http.clone(), base.clone());
        async move { get(&http, &format!("{base}/")).await.2 == "b" }
    })
    .await;
    assert_eq!(fg.gateway.reloads.last().unwrap().trigger, "file");

    // A new file in the included directory is picked up too.
    write(
        &dir,
        "farms/zz-extra.yaml",
        &format!(
            "farms:\n  - name: extra\n    servers: [ {{ address: \"{}\" }} ]\n",
            a.addr
        ),
    );
    wait_until(Duration::from_secs(10), "the new include is loaded", || {
        let fg = &fg;
        async move { fg.gateway.snapshot().farm_index("extra").is_some() }
    })
    .await;
    let (status, _, body) = get(&http, &format!("{base}/other/x")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn limits_can_come_from_included_files() {
    let a = Backend::named("a").await;
    let dir = fresh_temp_dir("farmgate-include-limits");
    write(
        &dir,
        "farmgate.yaml",
        &format!(
            "include: [limits/*.yaml]\nlisteners: [ {{ bind: \"127.0.0.1:0\", limits: [per-client] }} ]\n\
             admin: {{ enabled: false }}\nlog: {{ access: off }}\n\
             farms:\n  - name: web\n    servers: [ {{ address: \"{}\" }} ]\n",
            a.addr
        ),
    );
    write(
        &dir,
        "limits/clients.yaml",
        "limits:\n  - { name: per-client, rate: 1/m, burst: 2 }\n",
    );
    // The listener in the main file names a limit of the included file, and
    // the limit applies: two requests pass, the third is refused.
    let fg = start_from_file(&dir.join("farmgate.yaml")).await;
    let base = format!("http://{}", fg.first_addr());
    let http = client();
    let statuses = [
        get(&http, &format!("{base}/")).await.0,
        get(&http, &format!("{base}/")).await.0,
        get(&http, &format!("{base}/")).await.0,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );

    // A problem in an included limit is placed in its own file.
    write(
        &dir,
        "limits/zz-bad.yaml",
        "limits:\n  - { name: other, rate: 5/m }\n  - { name: slow, rate: often }\n",
    );
    let (code, out) = check(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    let bad = dir.join("limits/zz-bad.yaml").display().to_string();
    assert!(out.contains(&format!("{bad}:3:")), "{out}");
    assert!(out.contains("limits[1].rate:"), "{out}");
    // A name used twice across files names the second file's entry.
    write(
        &dir,
        "limits/zz-bad.yaml",
        "limits:\n  - { name: per-client, rate: 5/m }\n",
    );
    let (code, out) = check(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{bad}:2:13: limits[0].name: duplicate limit name \"per-client\""
        )),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
