//! What a cache hit offers this stage: the identity body as stored and a
//! place beside the entry for its encoded forms, so the next hit asking for
//! the same encoding is served as kept, with no encoding work. The cache
//! sits above this stage: it implements [`Stored`] (`cache/variants.rs`)
//! and puts a [`StoredBody`] in a hit's extensions when this stage may
//! encode it.

use super::negotiate::Algorithm;
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// A stored response and the encoded forms kept beside it.
pub trait Stored: Send + Sync {
    /// The identity body as stored.
    fn body(&self) -> &Bytes;
    /// The form encoded with `a`, if one was kept.
    fn variant(&self, a: Algorithm) -> Option<Bytes>;
    /// Keeps `encoded` as the form for `a`, unless another request kept
    /// one first: the one kept is returned, so every hit is byte-identical.
    fn keep(&self, a: Algorithm, encoded: Bytes) -> Bytes;
}

/// A hit's [`Stored`], as its response's extensions carry it.
#[derive(Clone)]
pub struct StoredBody(pub Arc<dyn Stored>);

impl fmt::Debug for StoredBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredBody")
    }
}
