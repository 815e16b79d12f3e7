//! The new process's side of an upgrade: take the listening sockets and the
//! servers' state from the process it replaces, then say ready (or why
//! not) once it serves.

use super::channel;
use super::{Hello, Reply, ServerRecord, ENV};
use crate::config::Snapshot;
use crate::farm::AdminState;
use crate::listener::inherited::{self, Inherited};
use std::os::unix::net::UnixStream;

/// A takeover under way: the channel to the old process and what it sent.
#[derive(Debug)]
pub struct Takeover {
    stream: UnixStream,
    pub from_pid: u32,
    servers: Vec<ServerRecord>,
}

impl Takeover {
    /// When this process was started by an upgrade: connects to the old
    /// process and receives its sockets (offered to the listeners) and
    /// server states. None for an ordinary start.
    pub fn from_env() -> Option<Result<Takeover, String>> {
        let path = std::env::var_os(ENV)?;
        // Not for whatever this process starts later (its own upgrade).
        std::env::remove_var(ENV);
        Some(Self::connect(std::path::Path::new(&path)))
    }

    fn connect(path: &std::path::Path) -> Result<Takeover, String> {
        let stream = UnixStream::connect(path)
            .map_err(|e| format!("upgrade channel {}: {e}", path.display()))?;
        let (hello, fds): (Hello, _) =
            channel::recv(&stream).map_err(|e| format!("upgrade channel: {e}"))?;
        if hello.sockets.len() != fds.len() {
            return Err(format!(
                "upgrade channel: {} sockets announced, {} received",
                hello.sockets.len(),
                fds.len()
            ));
        }
        let sockets = hello
            .sockets
            .into_iter()
            .zip(fds)
            .map(|(info, fd)| Inherited {
                listener: info.listener,
                bind: info.bind,
                socket: std::net::TcpListener::from(fd),
            })
            .collect::<Vec<_>>();
        inherited::offer(sockets);
        Ok(Takeover {
            stream,
            from_pid: hello.from_pid,
            servers: hello.servers,
        })
    }

    /// Gives the servers of `snap` the admin and health state they had in
    /// the old process, before any request is picked. Returns how many
    /// servers were not enabled or not healthy there.
    pub fn apply(&self, snap: &Snapshot) -> usize {
        let mut changed = 0;
        for farm in &snap.farms {
            for (i, s) in farm.servers.iter().enumerate() {
                let Some(r) = self
                    .servers
                    .iter()
                    .find(|r| *r.farm == *farm.name && *r.server == *s.name)
                else {
                    continue;
                };
                let admin = AdminState::parse(&r.admin).unwrap_or(AdminState::Enabled);
                if admin != AdminState::Enabled {
                    s.state.set_admin(admin);
                    s.state.stats.record_change(
                        admin.as_str(),
                        format!("{} before the binary upgrade", admin.as_str()),
                    );
                }
                if !r.healthy {
                    if let Some(h) = farm.health.members.get(i) {
                        h.inherit_down(&farm.health);
                    }
                }
                changed += usize::from(admin != AdminState::Enabled || !r.healthy);
            }
        }
        changed
    }

    /// This process serves: the old one may stop accepting.
    pub fn ready(self) -> std::io::Result<()> {
        channel::send(
            &self.stream,
            &Reply::Ready {
                pid: std::process::id(),
            },
            &[],
        )
    }

    /// This process cannot serve: the old one keeps serving.
    pub fn failed(self, message: &str) {
        let _ = channel::send(
            &self.stream,
            &Reply::Failed {
                message: message.to_string(),
            },
            &[],
        );
    }
}

/// Sockets nobody took (their listener left the config) are closed now.
pub fn close_unused() {
    inherited::close_unused();
}
