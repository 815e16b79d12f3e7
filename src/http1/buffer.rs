//! A connection's read buffer, reused for every message on it: bytes are
//! read into its free tail, consumed from its head, and what is left
//! (a pipelined request, body bytes) moves to the front only when the tail
//! runs out. An idle connection can give its memory back.

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
