//! Encoded variants of stored responses. The store keeps the identity
//! body a backend sent; the compression stage (the layer below) that
//! encodes a hit keeps its output here, beside the identity, so the next
//! hit for that encoding is served as stored, with no encoding work. A
//! client asking for identity still hits the same entry; whatever removes
//! the entry (purge, invalidation, a refresh, eviction) removes its
//! variants with it.
//!
//! A hit carries a [`StoredBody`] in its extensions only when the request
//! may be answered encoded (`serve.rs` is told so by the request stage).

use super::entry::Entry;
use super::key::Key;
use super::store::CacheStore;
use crate::compress::{Algorithm, Stored, StoredBody};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

/// Encoded forms an entry can hold, by [`Algorithm::index`].
pub const SLOTS: usize = Algorithm::ALL.len();

#[derive(Debug, Default)]
pub struct Variants([OnceLock<Bytes>; SLOTS]);

impl Variants {
    /// Bytes held by the variants, for the entry's weight.
    pub fn bytes(&self) -> usize {
        self.0
            .iter()
            .filter_map(OnceLock::get)
            .map(Bytes::len)
            .sum()
    }
}

/// A response served from the store, as the stage after the cache sees it.
#[derive(Debug)]
pub struct StoredResponse {
    entry: Arc<Entry>,
    store: Arc<CacheStore>,
    key: Key,
}

impl StoredResponse {
    /// `entry` (stored at `key` in `store`) offered to the compression
    /// stage.
    pub fn offer(entry: Arc<Entry>, store: Arc<CacheStore>, key: &[u8]) -> StoredBody {
        StoredBody(Arc::new(StoredResponse {
            entry,
            store,
            key: key.into(),
        }))
    }
}

impl Stored for StoredResponse {
    fn body(&self) -> &Bytes {
        &self.entry.body
    }

    fn variant(&self, a: Algorithm) -> Option<Bytes> {
        self.entry.variants.0.get(a.index())?.get().cloned()
    }

    /// Also re-weighs the entry, so `max_memory` bounds variants too.
    fn keep(&self, a: Algorithm, encoded: Bytes) -> Bytes {
        let Some(cell) = self.entry.variants.0.get(a.index()) else {
            return encoded;
        };
        match cell.set(encoded) {
            Ok(()) => {
                self.store.reweigh(&self.key, &self.entry);
                cell.get().cloned().unwrap_or_default()
            }
            Err(_) => cell.get().cloned().unwrap_or_default(),
        }
    }
}
