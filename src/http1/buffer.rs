//! A connection's read buffer, reused for every message on it: bytes are
//! read into its free tail, consumed from its head, and what is left
//! (a pipelined request, body bytes) moves to the front only when the tail
//! runs out. An idle connection can give its memory back.
//!
//! Buffers of the usual read size come from, and go back to, a small pool
//! per worker thread (as nginx and HAProxy take theirs from pools): a
//! connection waiting for its next request holds none, so a burst of
//! clients that go quiet leaves no buffers behind, and a busy connection
//! takes one without a trip to the allocator. [`scratch`] does the same
//! for the write side's head buffers.

use std::cell::RefCell;

/// The read size whose buffers are pooled (the engine's head reads).
pub const POOLED: usize = 16 << 10;
/// Buffers a thread keeps at most (1 MiB of read buffers).
const KEEP: usize = 64;
/// Scratch buffers larger than this go back to the allocator.
const SCRATCH_MAX: usize = 64 << 10;

/// Header maps a thread keeps at most, and the largest kept (a map that
/// grew for an unusual head goes back to the allocator). A request holds
/// its map until it is answered, so the pool covers the requests a thread
/// has waiting on backends at a busy moment (256 of ~2 KiB each for the
/// usual heads, ~0.5 MiB; with 16, a thread with 200 requests waiting made
/// two allocations for most of them).
const MAPS_KEPT: usize = 256;
const MAP_MAX: usize = 64;

/// A new field table's room, and the largest kept. Grown from nothing, a
/// table was one to three allocations on every new connection; pooled, a
/// table grown once for a browser's 10-20 fields serves the next
/// connections as it is. Small to start: a connection waiting for its
/// next request holds its table (10,000 clients at once measured 0.3 KiB
/// more per idle connection with room for 8).
const FIELD_TABLE: usize = 4;
const FIELD_TABLE_MAX: usize = 128;

thread_local! {
    static FIELDS: RefCell<Vec<Vec<super::Field>>> = const { RefCell::new(Vec::new()) };
    static READ: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static SCRATCH: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static MAPS: RefCell<Vec<http::HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// An empty `HeaderMap` with room for `n` fields: a pooled one when the
/// thread has one (its two tables kept from an earlier request), else new.
pub fn header_map(n: usize) -> http::HeaderMap {
    match take_from(&MAPS) {
        Some(m) if m.capacity() >= n => m,
        _ => http::HeaderMap::with_capacity(n),
    }
}

/// Gives a request's `HeaderMap` back for the next request on this thread.
pub fn recycle_map(mut m: http::HeaderMap) {
    if m.capacity() == 0 || m.capacity() > MAP_MAX {
        return;
    }
    m.clear();
    keep_in(&MAPS, m, MAPS_KEPT);
}

/// An empty field table for a connection's request heads: one a closed or
/// parked connection gave back when the thread has one.
pub(super) fn field_table() -> Vec<super::Field> {
    take_from(&FIELDS).unwrap_or_else(|| Vec::with_capacity(FIELD_TABLE))
}

/// Gives `v`'s memory back for the thread's next connection (leaving `v`
/// empty).
pub(super) fn recycle_fields(v: &mut Vec<super::Field>) {
    let mut v = std::mem::take(v);
    if v.capacity() == 0 || v.capacity() > FIELD_TABLE_MAX {
        return;
    }
    v.clear();
    keep_in(&FIELDS, v, KEEP);
}

/// A pool's last item, if the thread has one (none while the thread's
/// locals are torn down).
pub fn take_from<T>(pool: &'static std::thread::LocalKey<RefCell<Vec<T>>>) -> Option<T> {
    pool.try_with(|p| p.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// Keeps `item` in `pool` while it holds fewer than `max` (else it is
/// dropped).
pub fn keep_in<T>(pool: &'static std::thread::LocalKey<RefCell<Vec<T>>>, item: T, max: usize) {
    let _ = pool.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if p.len() < max {
                p.push(item);
            }
        }
    });
}

/// An empty write buffer, with the capacity a previous head left it.
pub fn scratch() -> Vec<u8> {
    take_from(&SCRATCH).unwrap_or_default()
}

/// Makes `v` a pooled write buffer if it has no memory of its own: taken
/// where a head is written, not before a wait, so that a thread's pool
/// covers the exchanges in flight (hundreds of them waiting on their
/// backends each held two, the pool ran dry and every other request
/// allocated and grew new ones).
pub fn ensure_scratch(v: &mut Vec<u8>) {
    if v.capacity() == 0 {
        *v = scratch();
    }
}

/// Gives `v`'s memory back to the pool (leaving `v` empty).
pub fn recycle(v: &mut Vec<u8>) {
    let mut v = std::mem::take(v);
    if v.capacity() != 0 && v.capacity() <= SCRATCH_MAX {
        v.clear();
        keep_in(&SCRATCH, v, KEEP);
    }
}

/// Bytes read and not yet consumed are `data[start..end]`.
#[derive(Debug, Default)]
pub struct ReadBuf {
    /// Zero-filled once to its capacity (reads need initialised bytes).
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// An empty buffer; it allocates at its first read.
    pub fn new() -> Self {
        ReadBuf::default()
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room to read at least `want` bytes into (at most `cap` bytes held
    /// in all); empty when the unconsumed bytes already fill `cap`. Moves
    /// the unconsumed bytes to the front when that makes the room.
    pub fn spare(&mut self, want: usize, cap: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < want && self.data.len() < cap {
            let grow = (self.end + want).max(self.data.len() * 2).min(cap);
            if self.data.is_empty() && grow == POOLED {
                if let Some(v) = take_from(&READ) {
                    self.data = v;
                    return &mut self.data[..];
                }
            }
            self.data.resize(grow, 0);
        }
        &mut self.data[self.end..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// `n` bytes at the front were used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Appends bytes (tests, and callers that read elsewhere).
    pub fn extend(&mut self, bytes: &[u8]) {
        let room = self.spare(bytes.len(), usize::MAX);
        room[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Frees the memory when nothing is buffered (an idle keep-alive
    /// connection); returns whether it did.
    pub fn release(&mut self) -> bool {
        if !self.is_empty() {
            return false;
        }
        *self = ReadBuf::default();
        true
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if self.data.len() == POOLED {
            keep_in(&READ, std::mem::take(&mut self.data), KEEP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_read_buffer_is_the_next_one_taken() {
        let mut a = ReadBuf::new();
        let first = a.spare(POOLED, usize::MAX).as_ptr();
        assert!(a.release());
        assert_eq!(a.capacity(), 0, "an idle buffer holds no memory");
        let mut b = ReadBuf::new();
        assert_eq!(b.spare(POOLED, usize::MAX).as_ptr(), first);
        drop(b);
        // Dropped (a closed connection) goes back too.
        let mut c = ReadBuf::new();
        assert_eq!(c.spare(POOLED, usize::MAX).as_ptr(), first);
    }

    #[test]
    fn a_buffer_with_bytes_left_is_kept() {
        let mut a = ReadBuf::new();
        a.extend(b"GET / HTTP/1.1\r\n");
        assert!(!a.release());
        assert_eq!(a.data(), b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn scratch_buffers_come_back_empty_with_their_capacity() {
        let mut v = scratch();
        v.extend_from_slice(&[1; 1000]);
        let cap = v.capacity();
        recycle(&mut v);
        assert_eq!(v.capacity(), 0);
        let w = scratch();
        assert!(w.is_empty());
        assert_eq!(w.capacity(), cap);
    }

    #[test]
    fn header_maps_come_back_empty() {
        let mut m = header_map(4);
        m.insert("x-a", http::HeaderValue::from_static("1"));
        recycle_map(m);
        let again = header_map(4);
        assert!(again.is_empty());
        assert!(again.capacity() >= 4);
    }
}
