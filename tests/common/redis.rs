//! A real `redis-server` on an ephemeral loopback port, for the cluster
//! tests: started fresh (no persistence), stopped and continued (SIGSTOP,
//! SIGCONT), killed and restarted empty on the same port.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts redis-server; fails naming the Debian package when missing.
    pub async fn start() -> RedisServer {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: install the Debian package redis-server (scripts/test.sh installs it)"
        );
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = crate::common::fresh_temp_dir("farmgate-redis");
        let mut r = RedisServer {
            child: None,
            addr,
            dir,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ping().await.is_none() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// A command connection for the test's own checks.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn ping(&self) -> Option<()> {
        let client = redis::Client::open(self.url()).ok()?;
        let attempt = async {
            let mut c = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .ok()
                .map(|_| ())
        };
        tokio::time::timeout(Duration::from_millis(500), attempt)
            .await
            .ok()
            .flatten()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} redis-server failed");
    }

    /// Freezes it: connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Kills it (SIGKILL) and waits for the exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}
