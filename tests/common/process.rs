//! Running the real `farmgate` binary as a child process, for what only a
//! process shows: exit codes, signals, resident memory.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_farmgate")
}

/// Writes `text` to a fresh temp file and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = crate::common::fresh_temp_dir("farmgate-test");
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

/// A free port on 127.0.0.1 (bound then released) for a child process to
/// listen on, taken below the kernel's ephemeral range: a port the kernel
/// hands out for `:0` is an ephemeral one, and between the pick and the
/// child's bind any outgoing connection of a test running alongside may
/// take it as its source port (CI saw "Address already in use" that way).
/// Ports are handed out in turn from a start that differs per process.
pub fn free_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const FIRST: u32 = 10_000;
    if low > FIRST + 1_000 {
        let span = low - FIRST;
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = FIRST + (start + n) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return l.local_addr().unwrap();
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Starts `farmgate run --config PATH` and waits until `addr` accepts.
    pub async fn run(config: &PathBuf, addr: SocketAddr) -> Proc {
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Proc::wait_listening(child, addr).await
    }

    /// Waits until the started `child` accepts on `addr`.
    pub async fn wait_listening(child: Child, addr: SocketAddr) -> Proc {
        let mut p = Proc { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return p;
            }
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("farmgate exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "farmgate did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
    pub fn status_kib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit with a deadline; returns the exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "farmgate did not exit in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
