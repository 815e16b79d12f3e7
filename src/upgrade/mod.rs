//! Binary upgrade: replacing the running farmgate with a new process (a new
//! version, a changed `runtime.worker_threads`) without losing a request.
//!
//! The running process (`crate::handover`) starts the new binary with the same
//! arguments and a Unix socket path in `FARMGATE_UPGRADE_SOCKET`, hands it
//! every listening socket (admin included) and the servers' health and
//! admin state over that socket, and waits for it to load its config and
//! report ready (`takeover.rs`). Only then does it stop accepting and
//! retire its connections (`ConnTracker::retire`), exiting once it holds
//! nothing. A new process that fails leaves the old one serving.

pub mod channel;
pub mod takeover;

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use tokio::sync::watch;

/// The environment variable that tells a starting farmgate to take over.
pub const ENV: &str = "FARMGATE_UPGRADE_SOCKET";

/// How to start the binary again: the path it was started from (read
/// again from disk at each upgrade) and its arguments.
#[derive(Debug, Clone)]
pub struct StartCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The gateway's upgrade state.
#[derive(Debug)]
pub struct Upgrader {
    command: OnceLock<StartCommand>,
    busy: tokio::sync::Mutex<()>,
    /// The new process's pid once one serves in this one's place.
    handed_over: watch::Sender<Option<u32>>,
    failed: AtomicU64,
    refused: AtomicU64,
}

impl Default for Upgrader {
    fn default() -> Self {
        Upgrader {
            command: OnceLock::new(),
            busy: tokio::sync::Mutex::new(()),
            handed_over: watch::Sender::new(None),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl Upgrader {
    /// Enables upgrades: `farmgate run` sets how it was started.
    pub fn enable(&self, command: StartCommand) {
        let _ = self.command.set(command);
    }

    /// The upgrade lock: None while another upgrade runs.
    pub fn try_begin(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.busy.try_lock().ok()
    }

    pub fn command(&self) -> Option<&StartCommand> {
        self.command.get()
    }

    /// The pid of the process that took over, once one did.
    pub fn handed_over_to(&self) -> Option<u32> {
        *self.handed_over.borrow()
    }

    pub fn set_handed_over(&self, pid: u32) {
        self.handed_over.send_replace(Some(pid));
    }

    pub fn count_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Upgrades that did not happen: (failed, refused).
    pub fn not_done(&self) -> (u64, u64) {
        (
            self.failed.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    /// Resolves once a new process has taken over; its pid.
    pub async fn handed_over(&self) -> u32 {
        let mut rx = self.handed_over.subscribe();
        let pid = match rx.wait_for(Option::is_some).await {
            Ok(pid) => pid.unwrap_or_default(),
            // The sender lives as long as self: never reached.
            Err(_) => return std::future::pending().await,
        };
        pid
    }
}

/// What the old process hands over, besides the sockets.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub from_pid: u32,
    /// One per socket attached, in order.
    pub sockets: Vec<SocketInfo>,
    pub servers: Vec<ServerRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SocketInfo {
    /// The listener's name; `admin` for the admin listener.
    pub listener: String,
    /// The address as configured (port 0 stays 0).
    pub bind: SocketAddr,
}

/// One server's state worth keeping across the upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerRecord {
    pub farm: String,
    pub server: String,
    /// `enabled`, `draining` or `disabled`.
    pub admin: String,
    pub healthy: bool,
    /// Taken out by live traffic (comes back through probation).
    pub down_by_live: bool,
}

/// What the new process answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Ready { pid: u32 },
    Failed { message: String },
}
