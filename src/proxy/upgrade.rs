//! HTTP/1.1 Upgrade (WebSocket and friends): once the backend answers 101,
//! both upgraded connections are joined and bytes are copied both ways
//! until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tunnels open in this process: no longer client connections to the
/// listener's tracker, but a process handing over to a new one (binary
/// upgrade) waits for them before it exits.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many upgraded connections (WebSocket, ...) are open now.
pub fn open_tunnels() -> usize {
    OPEN.load(Ordering::Relaxed)
}

struct Open;

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Joins the client's and the backend's upgraded connections in a task.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    OPEN.fetch_add(1, Ordering::Relaxed);
    let open = Open;
    tokio::spawn(async move {
        let _open = open;
        let (c, b) = tokio::join!(client, backend);
        match (c, b) {
            (Ok(c), Ok(b)) => {
                let mut c = TokioIo::new(c);
                let mut b = TokioIo::new(b);
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    tracing::debug!("upgraded connection ended: {e}");
                }
            }
            (Err(e), _) | (_, Err(e)) => tracing::debug!("upgrade failed: {e}"),
        }
    });
}
