//! farmgate under systemd: the `sd_notify` messages the real binary sends
//! over a real `NOTIFY_SOCKET` (a datagram socket this test binds, as
//! systemd does), and the shipped unit passing `systemd-analyze verify`.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/process.rs"]
mod process;

use common::*;
use process::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Receives notify datagrams until one contains `want`; returns it and
/// every message seen before it.
fn until(sock: &UnixDatagram, want: &str, what: &str) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no {what} ({want}); got {seen:?}"
        );
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == want) {
                    return (msg, seen);
                }
                seen.push(msg);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// A datagram socket in `dir` standing in for systemd's `NOTIFY_SOCKET`.
fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    (path, sock)
}

#[tokio::test]
async fn notify_ready_after_bind_reloading_watchdog_and_stopping() {
    let backend = Backend::named("app").await;
    let dir = fresh_temp_dir("farmgate-notify");
    let (sock_path, sock) = notify_socket(&dir);
    let listen = free_port();
    let config = temp_file(
        "farmgate.yaml",
        &farm_config("round_robin", &[&backend], "", "")
            .replace("127.0.0.1:0", &listen.to_string()),
    );
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        // 400 ms: farmgate pings every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut fg = Proc { child };

    let (ready, before) = until(&sock, "READY=1", "READY=1 at start-up");
    assert!(before.is_empty(), "READY=1 comes first: {before:?}");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("1 farm(s)")),
        "a STATUS line for systemctl status: {ready:?}"
    );
    // READY=1 means serving: the listener accepts right away (no polling).
    let (status, _, body) = get(&client(), &format!("http://{listen}/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "app"));

    until(&sock, "WATCHDOG=1", "a watchdog ping");
    until(&sock, "WATCHDOG=1", "a second watchdog ping");

    fg.signal("HUP");
    let (reloading, _) = until(&sock, "RELOADING=1", "RELOADING=1 on SIGHUP");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "MONOTONIC_USEC for Type=notify-reload: {reloading:?}"
    );
    until(&sock, "READY=1", "READY=1 after the reload");

    fg.signal("TERM");
    until(&sock, "STOPPING=1", "STOPPING=1 at shutdown");
    assert_eq!(fg.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unreachable_notify_socket_is_not_fatal() {
    // systemd restarted, or a stale NOTIFY_SOCKET inherited from a shell.
    let backend = Backend::named("app").await;
    let dir = fresh_temp_dir("farmgate-notify-gone");
    let listen = free_port();
    let config = temp_file(
        "farmgate.yaml",
        &farm_config("round_robin", &[&backend], "", "")
            .replace("127.0.0.1:0", &listen.to_string()),
    );
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", dir.join("nobody-listens.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut fg = Proc { child };
    wait_until(Duration::from_secs(10), "farmgate listening", || async {
        tokio::net::TcpStream::connect(listen).await.is_ok()
    })
    .await;
    assert_eq!(get(&client(), &format!("http://{listen}/")).await.2, "app");
    fg.signal("TERM");
    assert_eq!(fg.wait_exit(Duration::from_secs(10)).await, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemd-analyze verify` on the shipped unit, with ExecStart pointing
/// at the binary under test and the man page it generates on MANPATH
/// (verify checks `Documentation=man:farmgate(1)` resolves).
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let analyze = "/usr/bin/systemd-analyze";
    assert!(
        std::path::Path::new(analyze).exists(),
        "{analyze} is missing: apt-get install -y systemd (scripts/test.sh installs it)"
    );
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/systemd/farmgate.service"
    ))
    .unwrap();
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=farmgate",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "WatchdogSec=",
    ] {
        assert!(unit.contains(want), "the unit lacks {want}");
    }
    let dir = fresh_temp_dir("farmgate-unit");
    std::fs::write(
        dir.join("farmgate.service"),
        unit.replace("/usr/bin/farmgate", bin()),
    )
    .unwrap();
    let man_dir = dir.join("man/man1");
    std::fs::create_dir_all(&man_dir).unwrap();
    let man = Command::new(bin()).arg("man").output().unwrap();
    assert!(man.status.success());
    std::fs::write(man_dir.join("farmgate.1"), &man.stdout).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(dir.join("farmgate.service"))
        .env("MANPATH", dir.join("man"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_upgraded_process_names_itself_the_main_pid() {
    let backend = Backend::named("app").await;
    let dir = fresh_temp_dir("farmgate-notify-upgrade");
    let (sock_path, sock) = notify_socket(&dir);
    let listen = free_port();
    let pid_file = dir.join("farmgate.pid");
    let config = temp_file(
        "farmgate.yaml",
        &format!(
            "{}runtime:\n  pid_file: \"{}\"\n",
            farm_config("round_robin", &[&backend], "", "")
                .replace("127.0.0.1:0", &listen.to_string()),
            pid_file.display()
        ),
    );
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fg = Proc { child };
    until(&sock, "READY=1", "READY=1 at start-up");
    // SIGUSR2: the new process says it is the main process, then ready.
    let out = Command::new(bin())
        .args(["upgrade", "--pid-file"])
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(new_pid, fg.pid());
    let (msg, _) = until(
        &sock,
        &format!("MAINPID={new_pid}"),
        "MAINPID= from the new process",
    );
    let _ = msg;
    until(&sock, "READY=1", "READY=1 from the new process");
    let (status, _, _) = get(&client(), &format!("http://{listen}/")).await;
    assert_eq!(status.as_u16(), 200);
    let _ = Command::new("kill")
        .args(["-9", &new_pid.to_string()])
        .status();
}
