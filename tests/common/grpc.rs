//! Real gRPC servers and clients for end-to-end tests: Python grpcio
//! (Debian package `python3-grpcio`, installed by `scripts/test.sh`) running
//! `grpc_backend.py` and `grpc_client.py` beside this file.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Debian's Python with the grpc module (not a pyenv or venv Python).
pub const PYTHON: &str = "/usr/bin/python3";
const GRPC_MODULE: &str = "/usr/lib/python3/dist-packages/grpc/__init__.py";

fn script(name: &str) -> String {
    format!("{}/tests/common/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn need_grpcio() {
    if !Path::new(PYTHON).exists() || !Path::new(GRPC_MODULE).exists() {
        panic!(
            "the gRPC tests need Python's grpc module at {GRPC_MODULE}: \
             install the Debian package `python3-grpcio` (scripts/test.sh does)"
        );
    }
}

/// A gRPC server process (`grpc_backend.py`) on 127.0.0.1.
pub struct GrpcServer {
    pub name: String,
    pub port: u16,
    child: Child,
    args: Vec<String>,
}

impl GrpcServer {
    /// Starts `NAME` on a free port; `extra`: more arguments (`--tls`,
    /// `--state-dir`).
    pub async fn start(name: &str, extra: &[String]) -> GrpcServer {
        Self::start_on(name, 0, extra).await
    }

    async fn start_on(name: &str, port: u16, extra: &[String]) -> GrpcServer {
        need_grpcio();
        let mut args = vec![script("grpc_backend.py"), name.to_string()];
        args.extend(extra.iter().cloned());
        let mut child = Command::new(PYTHON)
            .args(&args)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the gRPC server did not start within 20 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the gRPC server {name} exited at start"));
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        GrpcServer {
            name: name.to_string(),
            port,
            child,
            args: extra.to_vec(),
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGTERM: GOAWAY, in-flight calls finish, the process exits.
    pub async fn stop_gracefully(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the gRPC server did not stop within 15 s")
            .unwrap();
    }

    /// SIGKILL: connections cut mid-call.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        let again = Self::start_on(&self.name, self.port, &self.args).await;
        *self = again;
    }
}

/// Runs `grpc_client.py CMD TARGET ARGS..` to the end; its JSON result.
pub async fn grpc_client(cmd: &str, target: &str, args: &[&str]) -> serde_json::Value {
    need_grpcio();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(PYTHON)
            .arg(script("grpc_client.py"))
            .args([cmd, target])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the gRPC client did not finish within 120 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "gRPC client {cmd} printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A client started in the background; `wait_for` reads its progress lines.
pub struct RunningClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl RunningClient {
    pub fn start(cmd: &str, target: &str, args: &[&str]) -> RunningClient {
        need_grpcio();
        let mut child = Command::new(PYTHON)
            .arg(script("grpc_client.py"))
            .args([cmd, target])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        RunningClient { child, lines }
    }

    /// Waits for the line `what`.
    pub async fn wait_for(&mut self, what: &str) {
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if line == what {
                    return;
                }
            }
            panic!("the gRPC client ended before printing {what}");
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap_or_else(|_| panic!("no {what} from the gRPC client within 30 s"));
    }

    /// The JSON result (the last line).
    pub async fn result(mut self) -> serde_json::Value {
        let read = async {
            let mut last = String::new();
            while let Some(line) = self.lines.next_line().await.unwrap() {
                last = line;
            }
            last
        };
        let last = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the gRPC client did not finish within 60 s");
        let _ = self.child.wait().await;
        serde_json::from_str(&last).unwrap_or_else(|_| panic!("no result: {last:?}"))
    }
}
