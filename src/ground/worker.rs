//! Which serving thread the current code runs on. With
//! `runtime.worker_threads` above one, every serving thread runs its own
//! single-threaded runtime and keeps each connection it is given for the
//! connection's life (`listener::workers`); state whose parts belong to
//! one thread (the fast path's idle backend sockets, registered with one
//! thread's reactor) is kept in one shard per thread, picked by [`index`].

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serving threads in this process (1 until `listener::workers` starts more).
static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Serving threads: the number of shards per-thread state keeps.
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// This thread's serving index, below [`count`]; 0 for every thread that
/// is not a serving thread (the main thread is serving thread 0).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Sets how many serving threads run; before any per-thread state is made.
pub fn set_count(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

/// Marks the calling thread as serving thread `i`.
pub fn enter(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// Shard `i` of `n`: the thread's own when there are as many shards as
/// serving threads, a fair share otherwise (state made before the count
/// was set).
pub fn shard(n: usize) -> usize {
    index() % n.max(1)
}
