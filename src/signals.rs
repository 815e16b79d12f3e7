//! The Unix signals farmgate answers. None that operators' tools commonly
//! send ends the process except the two meant to:
//!
//! | signal | does |
//! |---|---|
//! | `TERM`, `INT` | graceful shutdown (`wait_for_shutdown`) |
//! | `HUP` | reload the config file (`systemctl reload`) |
//! | `USR1` | reopen the access log file (logrotate's `postrotate`) |
//! | `USR2` | binary upgrade: not supported yet, logged and ignored |
//! | `WINCH` | ignored (nginx stops its workers on it; farmgate has none) |

use crate::gateway::Gateway;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// Starts the tasks answering HUP, USR1, USR2 and WINCH. Installing a
/// handler is what keeps the default action (terminate) from happening.
pub fn install(gw: Arc<Gateway>) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut winch = signal(SignalKind::window_change())?;
    let reload_gw = gw.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            crate::reload::reload(&reload_gw, "signal").await;
        }
    });
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match gw.access_log() {
                Some(log) => log.reopen(),
                None => tracing::info!("SIGUSR1: the access log is off; nothing to reopen"),
            }
        }
    });
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            tracing::warn!("SIGUSR2 (binary upgrade) is not supported yet; ignored, still serving");
        }
    });
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            tracing::debug!("SIGWINCH ignored");
        }
    });
    Ok(())
}

/// Returns at the first SIGTERM or SIGINT.
pub async fn wait_for_shutdown() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("SIGTERM will not stop farmgate gracefully: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
