//! Encoded variants of stored responses. The store keeps the identity
//! body a backend sent; a later stage (compression) that encodes a hit
//! keeps its output here, beside the identity, so the next hit for that
//! encoding is served as stored, with no encoding work. A client asking
//! for identity still hits the same entry; whatever removes the entry
//! (purge, invalidation, a refresh, eviction) removes its variants with it.
//!
//! A hit carries a [`StoredResponse`] in its extensions, only when the
//! request accepts an encoding and compression is configured somewhere.

use super::entry::Entry;
use super::key::Key;
use super::store::CacheStore;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

/// Encoded forms an entry can hold, by the encoder's dense index.
pub const SLOTS: usize = 3;

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
#[derive(Debug, Clone)]
pub struct StoredResponse {
    entry: Arc<Entry>,
    store: Arc<CacheStore>,
    key: Key,
}

impl StoredResponse {
    pub fn new(entry: Arc<Entry>, store: Arc<CacheStore>, key: &[u8]) -> StoredResponse {
        StoredResponse {
            entry,
            store,
            key: key.into(),
        }
    }

    /// The identity body as stored.
    pub fn body(&self) -> &Bytes {
        &self.entry.body
    }

    /// The encoded form in `slot`, if one was kept.
    pub fn variant(&self, slot: usize) -> Option<Bytes> {
        self.entry.variants.0.get(slot)?.get().cloned()
    }

    /// Keeps `encoded` as the form in `slot` (unless another request kept
    /// one first: that one is returned, so every hit is byte-identical)
    /// and re-weighs the entry, so `max_memory` bounds variants too.
    pub fn keep(&self, slot: usize, encoded: Bytes) -> Bytes {
        let Some(cell) = self.entry.variants.0.get(slot) else {
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
