//! HTTP/1.1 Upgrade (WebSocket and friends): once the backend answers 101,
//! both upgraded connections are joined and bytes are copied both ways
//! until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the client's and the backend's upgraded connections in a task.
pub fn tunnel(client: OnUpgrade, backend: OnUpgrade) {
    tokio::spawn(async move {
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
