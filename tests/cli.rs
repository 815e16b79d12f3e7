//! The `farmgate` command itself: `check` messages, `--version`/`--help`,
//! and graceful shutdown of `run` on SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::*;
use process::*;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn check(text: &str) -> (i32, String, String) {
    let path = temp_file("farmgate.yaml", text);
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "\
listeners:
  - bind: \"127.0.0.1:8080\"
farms:
  - name: web
    servers:
      - address: \"127.0.0.1:9001\"
      - address: \"127.0.0.1:9002\"
";

#[test]
fn check_accepts_a_good_file_with_a_summary() {
    let (code, out, _) = check(GOOD);
    assert_eq!(code, 0);
    assert!(
        out.contains("ok: 1 listener(s), 1 farm(s), 2 server(s), 0 rule(s)"),
        "{out}"
    );
}

#[test]
fn check_names_file_line_column_and_key_for_each_mistake() {
    // (broken text, expected fragment of the error line)
    let cases: Vec<(String, &str)> = vec![
        // 1. a weight that is not a number
        (
            GOOD.replace("\"127.0.0.1:9002\"", "\"127.0.0.1:9002\"\n        weight: heavy"),
            "farmgate.yaml:8:17: farms[0].servers[1].weight: expected a whole number, found string \"heavy\"",
        ),
        // 2. an unknown key (typo)
        (
            GOOD.replace("    servers:", "    algoritm: round_robin\n    servers:"),
            "farmgate.yaml:5:5: farms[0]: unknown field `algoritm`",
        ),
        // 3. a bad server address
        (
            GOOD.replace("127.0.0.1:9002", "127.0.0.1"),
            "farmgate.yaml:7:18: farms[0].servers[1].address: address \"127.0.0.1\" needs a port",
        ),
        // 4. a default farm that does not exist
        (format!("{GOOD}default_farm: api\n"), "farmgate.yaml:8:15: default_farm: unknown farm \"api\""),
        // 5. two listeners on one address
        (
            GOOD.replace("farms:", "  - bind: \"127.0.0.1:8080\"\nfarms:"),
            "farmgate.yaml:3:11: listeners[1].bind: another listener already binds 127.0.0.1:8080",
        ),
        // 6. duplicate server names
        (
            GOOD.replace("\"127.0.0.1:9002\"", "\"127.0.0.1:9001\""),
            "farmgate.yaml:7:18: farms[0].servers[1].address: duplicate server \"127.0.0.1:9001\"",
        ),
        // 7. a duration without a unit
        (
            format!("{GOOD}proxy:\n  connect_timeout: 5\n"),
            "farmgate.yaml:9:20: proxy.connect_timeout: duration 5 needs a unit",
        ),
        // 8. a farm with zero servers
        (
            GOOD.replace(
                "      - address: \"127.0.0.1:9001\"\n      - address: \"127.0.0.1:9002\"\n",
                "      []\n",
            ),
            "farmgate.yaml:6:7: farms[0].servers: farm \"web\" has no servers",
        ),
    ];
    for (text, expected) in cases {
        let (code, out, err) = check(&text);
        assert_eq!(code, 1, "should fail:\n{text}\nstdout: {out}");
        assert!(
            err.contains(expected),
            "expected `{expected}` in:\n{err}\nfor:\n{text}"
        );
    }
}

#[test]
fn check_lists_every_problem_not_just_the_first() {
    let text = GOOD.replace("127.0.0.1:9002", "nowhere") + "default_farm: api\n";
    let (code, _, err) = check(&text);
    assert_eq!(code, 1);
    assert!(err.contains("farms[0].servers[1].address"), "{err}");
    assert!(err.contains("default_farm"), "{err}");
    assert!(err.contains("2 problem(s)"), "{err}");
}

#[test]
fn check_reports_a_missing_file() {
    let out = Command::new(bin())
        .args(["check", "--config", "/nonexistent/farmgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/farmgate.yaml:1:1: cannot read config file"));
}

#[test]
fn version_and_help() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("farmgate "));
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check", "demo"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_slow_request_finish_then_exits_zero() {
    let slow = Backend::with_handler(
        "slow",
        Arc::new(|_req| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                text_response(200, "finished")
            })
        }),
    )
    .await;
    let listen = free_port();
    let cfg = temp_file(
        "farmgate.yaml",
        &format!(
            "listeners:\n  - bind: \"{listen}\"\nadmin:\n  enabled: false\nlog:\n  access: off\n\
             farms:\n  - name: web\n    servers:\n      - address: \"{}\"\n",
            slow.addr
        ),
    );
    let mut fg = Proc::run(&cfg, listen).await;
    let http = client();
    let url = format!("http://{listen}/");
    let in_flight = tokio::spawn(async move { get(&http, &url).await });
    wait_until(
        Duration::from_secs(5),
        "request reached the backend",
        || async { slow.hits() == 1 },
    )
    .await;
    fg.signal("TERM");
    // New connections are refused once shutdown began...
    wait_until(Duration::from_secs(5), "listener closed", || async move {
        tokio::net::TcpStream::connect(listen).await.is_err()
    })
    .await;
    // ...while the request in flight completes normally.
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "finished");
    assert_eq!(fg.wait_exit(Duration::from_secs(10)).await, Some(0));
}
