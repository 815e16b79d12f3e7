//! The running process's side of a binary upgrade (`upgrade/` has the
//! protocol and the new process's side): start the new binary, hand it the
//! listening sockets and the servers' state, wait for its word.

use crate::gateway::Gateway;
use crate::upgrade::channel;
use crate::upgrade::{Hello, Reply, ServerRecord, SocketInfo, StartCommand, ENV};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the new process may take to connect, and then to load its
/// config and report ready.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why no upgrade happened; this process keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Not now: another upgrade runs, one already happened, or this process
    /// cannot upgrade (the demo).
    #[error("{0}")]
    Refused(String),
    /// The new process did not start or did not become ready.
    #[error("{0}")]
    Failed(String),
}

/// Starts a new process that takes over from this one. `Ok(pid)` once it
/// serves (this process should then retire).
pub async fn upgrade(gw: &Arc<Gateway>) -> Result<u32, UpgradeError> {
    let result = attempt(gw).await;
    let up = &gw.upgrade;
    match &result {
        Err(UpgradeError::Failed(_)) => up.count_failed(),
        Err(UpgradeError::Refused(why)) => {
            tracing::warn!("upgrade refused: {why}");
            up.count_refused()
        }
        Ok(_) => {}
    }
    result
}

async fn attempt(gw: &Arc<Gateway>) -> Result<u32, UpgradeError> {
    let up = &gw.upgrade;
    let Some(_busy) = up.try_begin() else {
        return Err(UpgradeError::Refused(
            "an upgrade is already under way".into(),
        ));
    };
    if let Some(pid) = up.handed_over_to() {
        return Err(UpgradeError::Refused(format!(
            "already handed over to pid {pid}"
        )));
    }
    let Some(cmd) = up.command() else {
        return Err(UpgradeError::Refused(
            "this farmgate cannot upgrade itself: only `farmgate run` can \
             (the demo's backends live in its process)"
                .into(),
        ));
    };
    tracing::info!("upgrade started: starting {}", cmd.program.display());
    let result = start_new(gw, cmd).await.map_err(UpgradeError::Failed);
    match &result {
        Ok(pid) => {
            tracing::info!("upgrade: new process {pid} serves; this one stops accepting");
            // Before anyone hears of the new process: every response from
            // here on is this process's last on its connection.
            gw.connections.retire();
            {
                let listeners = gw.listeners.lock().await;
                listeners.stop_traffic();
                listeners.stop_admin();
            }
            up.set_handed_over(*pid);
        }
        Err(why) => tracing::error!("upgrade refused, this process keeps serving: {why}"),
    }
    result
}

async fn start_new(gw: &Arc<Gateway>, cmd: &StartCommand) -> Result<u32, String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "farmgate-upgrade-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let _cleanup = RemoveOnDrop(path.clone());
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .env(ENV, &path)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.program.display()))?;
    let pid = child.id().unwrap_or_default();
    let exited = |status: std::io::Result<std::process::ExitStatus>| match status {
        Ok(s) => {
            format!("the new process {pid} exited ({s}) before it was ready; its log says why")
        }
        Err(e) => format!("the new process {pid} was lost: {e}"),
    };
    let stream = tokio::select! {
        s = listener.accept() => s.map_err(|e| format!("upgrade channel: {e}"))?.0,
        status = child.wait() => return Err(exited(status)),
        _ = tokio::time::sleep(CONNECT_TIMEOUT) => {
            let _ = child.kill().await;
            return Err(format!("the new process {pid} did not connect within {CONNECT_TIMEOUT:?}"));
        }
    };
    let stream = stream
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
        .map_err(|e| format!("upgrade channel: {e}"))?;
    let (sockets, fds) = {
        let set = gw.listeners.lock().await;
        let all = set
            .sockets()
            .map_err(|e| format!("cannot copy the listening sockets: {e}"))?;
        let mut infos = Vec::with_capacity(all.len());
        let mut fds = Vec::with_capacity(all.len());
        for (listener, bind, fd) in all {
            infos.push(SocketInfo { listener, bind });
            fds.push(fd);
        }
        (infos, fds)
    };
    let hello = Hello {
        from_pid: std::process::id(),
        sockets,
        servers: server_records(gw),
    };
    let mut reply = tokio::task::spawn_blocking(move || exchange(stream, &hello, &fds));
    let mut status = None;
    let reply = tokio::select! {
        r = &mut reply => r,
        s = child.wait() => {
            // What it said before exiting (the reason it failed) wins.
            match tokio::time::timeout(Duration::from_secs(1), &mut reply).await {
                Ok(r) => {
                    status = Some(s);
                    r
                }
                Err(_) => return Err(exited(s)),
            }
        }
        _ = tokio::time::sleep(READY_TIMEOUT) => {
            let _ = child.kill().await;
            return Err(format!("the new process {pid} was not ready within {READY_TIMEOUT:?}"));
        }
    }
    .map_err(|e| format!("upgrade channel: {e}"))?;
    match reply {
        Ok(Reply::Ready { pid }) if status.is_none() => Ok(pid),
        Ok(Reply::Ready { pid }) => Err(format!(
            "the new process {pid} exited right after it was ready"
        )),
        Ok(Reply::Failed { message }) => {
            // It exits by itself; reap it.
            if status.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            }
            Err(format!("the new process {pid} did not start: {message}"))
        }
        Err(e) => {
            let status = match status {
                Some(s) => Ok(s),
                None => tokio::time::timeout(Duration::from_secs(5), child.wait()).await,
            };
            match status {
                Ok(s) => Err(exited(s)),
                Err(_) => {
                    let _ = child.kill().await;
                    Err(format!("upgrade channel to pid {pid}: {e}"))
                }
            }
        }
    }
}

fn exchange(
    stream: UnixStream,
    hello: &Hello,
    fds: &[std::os::fd::OwnedFd],
) -> std::io::Result<Reply> {
    channel::send(&stream, hello, fds)?;
    Ok(channel::recv::<Reply>(&stream)?.0)
}

/// Every server's admin and health state, from the current snapshot.
fn server_records(gw: &Gateway) -> Vec<ServerRecord> {
    let snap = gw.snapshot();
    snap.farms
        .iter()
        .flat_map(|f| {
            f.servers.iter().enumerate().map(|(i, s)| ServerRecord {
                farm: f.name.to_string(),
                server: s.name.to_string(),
                admin: s.state.admin().as_str().to_string(),
                healthy: s.state.is_healthy(),
                down_by_live: f.health.members.get(i).is_some_and(|h| h.down_by_live()),
            })
        })
        .collect()
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
