//! Filling the cache from a backend response: a task reads the backend body
//! into the shared [`Buffer`] (clients read it from there as it grows) and,
//! when the body completed within `max_object_size`, stores it. Because the
//! task owns the backend body, the fetch goes on for the other clients and
//! for the cache when the client that started it goes away.
//!
//! The size decision is made while streaming: the first chunk that takes
//! the body past `max_object_size` turns storing off, the URL is marked so
//! that the next requests stream straight through, and from then on the
//! buffer only holds what its readers have not read yet.

use super::buffer::Buffer;
use super::config::CacheSpec;
use super::consolidate::Leader;
use super::entry::{Entry, Received};
use super::key::Key;
use super::policy::Freshness;
use super::store::CacheStore;
use http::header::{HeaderMap, HeaderName};
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;

/// What is needed to store the response once its body is complete.
pub struct Fill {
    pub store: Arc<CacheStore>,
    pub spec: CacheSpec,
    pub primary: Key,
    pub vary: Vec<HeaderName>,
    pub vary_values: Vec<u8>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub freshness: Freshness,
    pub received: Instant,
    /// With `cache.shared`: where the stored response goes too.
    pub to_tier: Option<super::shared::ToTier>,
}

impl Fill {
    fn commit(self, body: bytes::Bytes) {
        let entry = Entry::new(
            Received {
                status: self.status,
                headers: &self.headers,
                freshness: self.freshness,
                received: self.received,
                vary: self.vary,
            },
            body,
            &self.spec,
        );
        self.store
            .insert(&self.primary, &self.vary_values, entry.clone());
        if let Some(t) = self.to_tier {
            t.send(&self.primary, &entry, &self.store.stats.shared);
        }
    }
}

/// Starts the task that reads `body` into `buf`, stores it per `fill`,
/// and keeps `leader` registered (so others join) until it is done.
pub fn spawn<B>(body: B, buf: Arc<Buffer>, fill: Option<Fill>, leader: Option<Leader>)
where
    B: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
{
    tokio::spawn(pump(body, buf, fill, leader));
}

async fn pump<B>(mut body: B, buf: Arc<Buffer>, mut fill: Option<Fill>, mut leader: Option<Leader>)
where
    B: Body<Data = bytes::Bytes> + Unpin,
{
    loop {
        if !buf.wait_for_room().await {
            // Not stored and nobody reading: stop fetching.
            return;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not kept
                };
                if !data.is_empty() && buf.push(data) {
                    if let Some(f) = fill.take() {
                        f.store.mark_pass(&f.primary);
                    }
                    // Late requests no longer join a body that is not kept.
                    leader.take();
                }
            }
            Some(Err(_)) => {
                buf.finish(false);
                return;
            }
            None => {
                buf.finish(true);
                if let (Some(f), Some(whole)) = (fill, buf.whole()) {
                    f.commit(whole);
                }
                // `leader` drops here, after the entry is in the store.
                drop(leader);
                return;
            }
        }
    }
}
