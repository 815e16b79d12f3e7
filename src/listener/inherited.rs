//! Listening sockets handed over by the farmgate process this one replaces
//! (binary upgrade). `upgrade/` offers them before the listeners start;
//! binding an address takes the inherited socket of the same listener
//! instead of opening a new one, so connections waiting in its accept queue
//! are served by whichever process accepts first and none is refused.

use std::net::SocketAddr;
use std::sync::Mutex;

/// One inherited socket: the listener it served (`admin` for the admin
/// listener) and the address as configured (port 0 stays 0).
#[derive(Debug)]
pub struct Inherited {
    pub listener: String,
    pub bind: SocketAddr,
    pub socket: std::net::TcpListener,
}

static POOL: Mutex<Vec<Inherited>> = Mutex::new(Vec::new());

/// Makes `sockets` available to `take`.
pub fn offer(sockets: Vec<Inherited>) {
    lock().extend(sockets);
}

/// The inherited socket of listener `name` bound to `bind`, if any.
pub fn take(bind: SocketAddr, name: &str) -> Option<std::net::TcpListener> {
    let mut pool = lock();
    let i = pool
        .iter()
        .position(|s| s.bind == bind && s.listener == name)?;
    Some(pool.swap_remove(i).socket)
}

/// Closes inherited sockets no listener of the new config took (their
/// listener was removed from the config along with the upgrade).
pub fn close_unused() -> usize {
    let left = std::mem::take(&mut *lock());
    for s in &left {
        tracing::info!(listener = %s.listener, "inherited socket {} is not in the config: closed", s.bind);
    }
    left.len()
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Inherited>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}
