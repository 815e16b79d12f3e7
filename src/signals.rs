//! The Unix signals farmgate answers. None that operators' tools commonly
//! send ends the process except the two meant to:
//!
//! | signal | does |
//! |---|---|
//! | `TERM`, `INT` | graceful shutdown (`Shutdown::wait`) |
//! | `HUP` | reload the config file (`systemctl reload`) |
//! | `USR1` | reopen the access log file (logrotate's `postrotate`) |
//! | `USR2` | binary upgrade (`crate::handover`); the outcome is logged |
//! | `WINCH` | ignored (nginx stops its workers on it; farmgate has none) |

use crate::gateway::Gateway;
use std::sync::Arc;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Every signal farmgate answers, registered: from here on none of them
/// has its default action (terminate), even before `serve` runs; one that
/// arrives in between is handled when `serve` starts.
pub struct Signals {
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    winch: Signal,
    shutdown: Shutdown,
}

/// SIGTERM and SIGINT, for `Shutdown::wait`.
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

/// Registers the handlers; call it before the listeners bind, so a client
/// that sees farmgate listening can also signal it safely. Needs a runtime.
pub fn register() -> std::io::Result<Signals> {
    Ok(Signals {
        hup: signal(SignalKind::hangup())?,
        usr1: signal(SignalKind::user_defined1())?,
        usr2: signal(SignalKind::user_defined2())?,
        winch: signal(SignalKind::window_change())?,
        shutdown: Shutdown {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        },
    })
}

impl Signals {
    /// Starts the tasks answering HUP, USR1, USR2 and WINCH for `gw`;
    /// returns what `run` waits on to shut down.
    pub fn serve(self, gw: Arc<Gateway>) -> Shutdown {
        let Signals {
            mut hup,
            mut usr1,
            mut usr2,
            mut winch,
            shutdown,
        } = self;
        let (reload_gw, usr1_gw, upgrade_gw) = (gw.clone(), gw.clone(), gw);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                crate::reload::reload(&reload_gw, "signal").await;
            }
        });
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                match usr1_gw.access_log() {
                    Some(log) => log.reopen(),
                    None => tracing::info!("SIGUSR1: the access log is off; nothing to reopen"),
                }
            }
        });
        tokio::spawn(async move {
            while usr2.recv().await.is_some() {
                tracing::info!("SIGUSR2: binary upgrade");
                // Refused or failed: logged there, and this process serves on.
                let _ = crate::handover::upgrade(&upgrade_gw).await;
            }
        });
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                tracing::debug!("SIGWINCH ignored");
            }
        });
        shutdown
    }
}

impl Shutdown {
    /// Returns at the first SIGTERM or SIGINT (None: shut down), or once a
    /// new process took over from this one (binary upgrade): its pid.
    pub async fn wait(mut self, gw: &Gateway) -> Option<u32> {
        tokio::select! {
            _ = self.term.recv() => None,
            _ = self.int.recv() => None,
            pid = gw.upgrade.handed_over() => Some(pid),
        }
    }
}
