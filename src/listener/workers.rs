//! The serving threads (`runtime.worker_threads` above one). Each runs a
//! single-threaded tokio runtime of its own, as nginx runs worker
//! processes: a connection placed on a thread is served there for its
//! whole life, so its task, buffers and sockets stay in that core's caches
//! and no request pays for work stealing or for waking another thread.
//! Profiling tokio's work-stealing scheduler with two workers showed each
//! proxied request paying about a third more CPU than with one: context
//! switches of threads parking and unparking each other, and tasks moving
//! between cores.
//!
//! The accept loops, health checks, the admin API and the other tasks of
//! the process run on the main thread's runtime, which is serving thread
//! 0; each accepted connection goes to the serving thread with the fewest
//! open connections (its socket moves to that thread's reactor).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio::runtime::Handle;

/// The serving threads, index 0 the main thread's runtime.
static THREADS: OnceLock<Vec<Serving>> = OnceLock::new();

/// Open connections when there is one serving thread.
static ALONE: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

struct Serving {
    handle: Handle,
    /// Connections placed on it and still open.
    open: Arc<AtomicUsize>,
}

/// A connection's place on a serving thread: counted while it lives.
#[derive(Debug)]
pub(crate) struct Placed(Arc<AtomicUsize>);

impl Drop for Placed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts `n - 1` more serving threads beside the caller's (which must be
/// in its runtime, serving thread 0) and routes new connections to all
/// `n`. Once per process; `n <= 1` starts none.
pub fn start(n: usize) -> std::io::Result<()> {
    if n <= 1 || THREADS.get().is_some() {
        return Ok(());
    }
    crate::ground::worker::set_count(n);
    let mut threads = vec![Serving {
        handle: Handle::current(),
        open: Arc::default(),
    }];
    for i in 1..n {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("farmgate-worker-{i}"))
            .spawn(move || {
                crate::ground::worker::enter(i);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        // Serves what it is given until the process ends.
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("a serving thread ended at start"))??;
        threads.push(Serving {
            handle,
            open: Arc::default(),
        });
    }
    let _ = THREADS.set(threads);
    Ok(())
}

/// Hands the accepted `stream` to `serve` on the serving thread with the
/// fewest open connections (on this thread when there is only one).
pub(super) fn place<F>(stream: TcpStream, serve: F)
where
    F: FnOnce(TcpStream, Option<Placed>) + Send + 'static,
{
    let least = THREADS.get().and_then(|threads| {
        threads
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.open.load(Ordering::Relaxed))
    });
    let Some((i, to)) = least else {
        // One serving thread (or a runtime this module did not start).
        let open = ALONE.get_or_init(Arc::default);
        open.fetch_add(1, Ordering::Relaxed);
        return serve(stream, Some(Placed(open.clone())));
    };
    to.open.fetch_add(1, Ordering::Relaxed);
    let placed = Placed(to.open.clone());
    if i == crate::ground::worker::index() {
        return serve(stream, Some(placed));
    }
    // Out of this thread's reactor and into the other's.
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => return tracing::debug!("closed: cannot move the connection: {e}"),
    };
    to.handle.spawn(async move {
        match TcpStream::from_std(stream) {
            Ok(s) => serve(s, Some(placed)),
            Err(e) => tracing::warn!("closed: cannot serve the connection on its thread: {e}"),
        }
    });
}

/// Open connections per serving thread (`farmgate_serving_thread_connections`).
pub fn open_per_thread() -> Vec<usize> {
    match THREADS.get() {
        Some(t) => t.iter().map(|s| s.open.load(Ordering::Relaxed)).collect(),
        None => vec![ALONE.get().map_or(0, |n| n.load(Ordering::Relaxed))],
    }
}
