//! The shared growing body of one backend response: the fetch task appends
//! chunks as they arrive, and any number of client bodies read them, each
//! at its own pace, so every consolidated client gets the response streamed
//! as it comes in, not after it completes.
//!
//! While the response is being stored every chunk is kept (at most
//! `max_object_size`: then it becomes the cache entry). Once it is known not
//! to be stored, chunks every reader has passed are dropped and the fetch
//! waits while `limit` bytes are unread, so memory stays bounded and the
//! slowest reader paces the backend, as a plain proxy would.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// The backend's body failed midway; readers end with this error.
#[derive(Debug, thiserror::Error)]
#[error("the backend response body ended with an error")]
pub struct BodyFailed;

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("limit", &self.limit)
            .finish()
    }
}

pub struct Buffer {
    state: Mutex<State>,
    /// Wakes the fetch task when readers made room.
    room: Notify,
    limit: u64,
}

struct Reader {
    pos: usize,
    waker: Option<Waker>,
}

struct State {
    chunks: VecDeque<Bytes>,
    /// Absolute index of `chunks[0]`.
    first: usize,
    /// Bytes held in `chunks`.
    held: u64,
    /// Bytes appended so far.
    total: u64,
    /// `Some(true)` complete, `Some(false)` failed.
    end: Option<bool>,
    storing: bool,
    readers: Vec<Option<Reader>>,
    live: usize,
}

impl State {
    fn wake_all(&mut self) {
        for r in self.readers.iter_mut().flatten() {
            if let Some(w) = r.waker.take() {
                w.wake();
            }
        }
    }

    /// Drops chunks every reader has passed (only when not storing).
    fn trim(&mut self) {
        if self.storing {
            return;
        }
        let upto = self
            .readers
            .iter()
            .flatten()
            .map(|r| r.pos)
            .min()
            .unwrap_or(self.first + self.chunks.len());
        while self.first < upto {
            match self.chunks.pop_front() {
                Some(c) => {
                    self.held -= c.len() as u64;
                    self.first += 1;
                }
                None => break,
            }
        }
    }
}

impl Buffer {
    /// A buffer that keeps everything up to `limit` bytes when `storing`.
    pub fn new(storing: bool, limit: u64) -> Arc<Buffer> {
        Arc::new(Buffer {
            state: Mutex::new(State {
                chunks: VecDeque::new(),
                first: 0,
                held: 0,
                total: 0,
                end: None,
                storing,
                readers: Vec::new(),
                live: 0,
            }),
            room: Notify::new(),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new reader from the first byte, or `None` if the start of the body
    /// is already gone (the caller then fetches for itself).
    pub fn attach(self: &Arc<Self>) -> Option<BufferReader> {
        let mut s = self.lock();
        if s.first != 0 {
            return None;
        }
        let reader = Reader {
            pos: 0,
            waker: None,
        };
        let slot = match s.readers.iter().position(Option::is_none) {
            Some(i) => {
                s.readers[i] = Some(reader);
                i
            }
            None => {
                s.readers.push(Some(reader));
                s.readers.len() - 1
            }
        };
        s.live += 1;
        Some(BufferReader {
            buf: self.clone(),
            slot,
        })
    }

    /// Appends a chunk. Returns true when this chunk pushed a stored
    /// response past the limit: it is no longer being stored.
    pub fn push(&self, chunk: Bytes) -> bool {
        let mut s = self.lock();
        s.total += chunk.len() as u64;
        s.held += chunk.len() as u64;
        s.chunks.push_back(chunk);
        let overflowed = s.storing && s.total > self.limit;
        if overflowed {
            s.storing = false;
            s.trim();
        }
        s.wake_all();
        overflowed
    }

    /// Waits until another chunk may be read from the backend. Returns
    /// false when nobody needs the rest of the body (not stored, no reader).
    pub async fn wait_for_room(&self) -> bool {
        loop {
            let notified = self.room.notified();
            {
                let s = self.lock();
                if s.storing {
                    return true;
                }
                if s.live == 0 {
                    return false;
                }
                if s.held < self.limit {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Marks the end of the body: complete or failed.
    pub fn finish(&self, ok: bool) {
        let mut s = self.lock();
        s.end = Some(ok);
        s.wake_all();
    }

    /// The whole body, if it is complete and was kept for storing.
    pub fn whole(&self) -> Option<Bytes> {
        let s = self.lock();
        if s.end != Some(true) || !s.storing || s.first != 0 {
            return None;
        }
        if s.chunks.len() == 1 {
            return s.chunks.front().cloned();
        }
        let mut all = BytesMut::with_capacity(s.total as usize);
        for c in &s.chunks {
            all.extend_from_slice(c);
        }
        Some(all.freeze())
    }

    pub fn readers(&self) -> usize {
        self.lock().live
    }
}

/// One client's view of a [`Buffer`]: a streaming response body.
pub struct BufferReader {
    buf: Arc<Buffer>,
    slot: usize,
}

impl Body for BufferReader {
    type Data = Bytes;
    type Error = crate::proxy::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let mut guard = this.buf.lock();
        let s = &mut *guard;
        let Some(Some(reader)) = s.readers.get_mut(this.slot) else {
            return Poll::Ready(None);
        };
        let pos = reader.pos;
        if pos >= s.first && pos - s.first < s.chunks.len() {
            reader.pos += 1;
            let chunk = s.chunks[pos - s.first].clone();
            if !s.storing {
                s.trim();
                drop(guard);
                this.buf.room.notify_one();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match s.end {
            Some(true) => Poll::Ready(None),
            Some(false) => Poll::Ready(Some(Err(Box::new(BodyFailed)))),
            None => {
                reader.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for BufferReader {
    fn drop(&mut self) {
        let mut s = self.buf.lock();
        if let Some(r) = s.readers.get_mut(self.slot) {
            if r.take().is_some() {
                s.live -= 1;
            }
        }
        s.trim();
        drop(s);
        self.buf.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn readers_get_chunks_as_they_arrive_and_the_whole_is_kept() {
        let buf = Buffer::new(true, 1024);
        let mut a = buf.attach().unwrap();
        buf.push(Bytes::from_static(b"one "));
        let f = a.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "one ");
        let b = buf.attach().expect("nothing dropped while storing");
        buf.push(Bytes::from_static(b"two"));
        buf.finish(true);
        assert_eq!(a.collect().await.unwrap().to_bytes(), "two");
        assert_eq!(b.collect().await.unwrap().to_bytes(), "one two");
        assert_eq!(buf.whole().unwrap(), "one two");
    }

    #[tokio::test]
    async fn overflow_stops_storing_and_bounds_memory() {
        let buf = Buffer::new(true, 8);
        let mut a = buf.attach().unwrap();
        assert!(!buf.push(Bytes::from_static(b"12345")));
        assert!(buf.push(Bytes::from_static(b"67890")), "past the limit");
        // Unread bytes (10) are at the limit: the fetch must wait.
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), buf.wait_for_room()).await;
        assert!(waited.is_err(), "no room until the reader reads");
        assert_eq!(
            a.frame().await.unwrap().unwrap().into_data().unwrap(),
            "12345"
        );
        assert!(buf.wait_for_room().await);
        assert!(buf.attach().is_none(), "the start is gone");
        buf.finish(true);
        assert!(buf.whole().is_none());
        drop(a);
        assert!(!buf.wait_for_room().await, "nobody left to read");
    }

    #[tokio::test]
    async fn a_failed_body_fails_its_readers() {
        let buf = Buffer::new(true, 64);
        let r = buf.attach().unwrap();
        buf.push(Bytes::from_static(b"part"));
        buf.finish(false);
        assert!(r.collect().await.is_err());
        assert!(buf.whole().is_none());
    }
}
