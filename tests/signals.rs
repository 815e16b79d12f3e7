//! The signals operators' tools send, to the real binary: SIGUSR1 reopens
//! the access log (logrotate's `postrotate kill -USR1`), and HUP, USR1,
//! USR2 and WINCH all leave farmgate serving; only TERM/INT stop it.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::*;
use process::*;
use std::path::Path;
use std::time::Duration;

fn config(backend: &Backend, listen: std::net::SocketAddr, log: &Path) -> String {
    farm_config("round_robin", &[backend], "", "")
        .replace("127.0.0.1:0", &listen.to_string())
        .replace(
            "log:\n  access: off\n",
            &format!(
                "log:\n  access: w3c\n  access_file: \"{}\"\n",
                log.display()
            ),
        )
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Request lines (not `#` directives) in a W3C log.
fn requests(path: &Path) -> Vec<String> {
    read_lines(path)
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[tokio::test]
async fn sigusr1_reopens_the_access_log_after_logrotate_moved_it() {
    let backend = Backend::named("app").await;
    let dir = fresh_temp_dir("farmgate-logrotate");
    let log = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let listen = free_port();
    let path = temp_file("farmgate.yaml", &config(&backend, listen, &log));
    let fg = Proc::run(&path, listen).await;
    let http = client();
    get(&http, &format!("http://{listen}/before")).await;
    wait_until(Duration::from_secs(5), "the first line", || async {
        requests(&log).len() == 1
    })
    .await;

    // What logrotate does: move the file, then `kill -USR1`.
    std::fs::rename(&log, &rotated).unwrap();
    fg.signal("USR1");
    wait_until(Duration::from_secs(5), "a new access.log", || async {
        log.exists()
    })
    .await;
    get(&http, &format!("http://{listen}/after")).await;
    wait_until(Duration::from_secs(5), "a line in the new file", || async {
        requests(&log).len() == 1
    })
    .await;

    let old = requests(&rotated);
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0].contains(" /before "), "{old:?}");
    let new = read_lines(&log);
    assert!(
        new[0].starts_with("#Software: farmgate") && new[3].starts_with("#Fields: date time "),
        "the reopened W3C file starts with its header: {new:?}"
    );
    assert!(new[4].contains(" /after "), "{new:?}");
    assert_eq!(requests(&log).len(), 1, "{new:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn hup_usr1_and_winch_leave_it_serving_term_stops_it() {
    let backend = Backend::named("app").await;
    let dir = fresh_temp_dir("farmgate-signals");
    let listen = free_port();
    let path = temp_file(
        "farmgate.yaml",
        &config(&backend, listen, &dir.join("access.log")),
    );
    let mut fg = Proc::run(&path, listen).await;
    let http = client();
    // USR2 is the binary upgrade: tests/upgrade.rs and tests/systemd.rs.
    for sig in ["HUP", "USR1", "WINCH", "USR1", "HUP"] {
        fg.signal(sig);
        // A signal's default action would have ended the process by the
        // time this request is answered (signals are delivered at once).
        let (status, _, body) = get(&http, &format!("http://{listen}/")).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "app"),
            "after SIG{sig}"
        );
        assert!(
            fg.child.try_wait().unwrap().is_none(),
            "farmgate ended on SIG{sig}"
        );
    }
    fg.signal("TERM");
    assert_eq!(fg.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
