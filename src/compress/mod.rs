//! HTTP response compression (gzip, Brotli, zstd): the stage between the
//! cache/forwarder and the client. Before a request goes on, [`plan`]
//! negotiates an algorithm from its `Accept-Encoding` (the request head is
//! gone by the time the response is back); [`apply`] then compresses the
//! response when it may be, as it streams.
//!
//! Cache-aware: the cache stores the identity body; a hit that is to be
//! sent encoded is encoded once and the result kept beside the entry
//! (`cache::variants`), so later hits for that encoding do no work and
//! clients asking for identity hit the same entry. Purging the entry
//! removes every variant. The cache is the layer above: it offers a hit
//! through [`StoredBody`], and this stage never names it.
//!
//! | file | owns |
//! |---|---|
//! | `config.rs` | the `compression` section: serde shape, defaults, compiled [`CompressSpec`] |
//! | `negotiate.rs` | `Accept-Encoding` with q-values, the [`Algorithm`]s |
//! | `decide.rs` | the "never" cases and the encoded response head |
//! | `encoder.rs` | the codecs behind one streaming interface |
//! | `body.rs` | the body compressed frame by frame, flushed on pauses |
//! | `stored.rs` | what a cache hit offers: its body and the encoded forms kept beside it |
//! | `stats.rs` | per-farm, per-algorithm counters for metrics |

pub mod body;
pub mod config;
pub mod decide;
pub mod encoder;
pub mod negotiate;
pub mod stats;
pub mod stored;

pub use config::{CompressSpec, RawCompression};
pub use negotiate::Algorithm;
pub use stats::{CompressStats, StatsRegistry};
pub use stored::{Stored, StoredBody};

use crate::proxy::body::{BoxError, ProxyBody};
use body::CompressBody;
use bytes::Bytes;
use decide::Verdict;
use encoder::Encoder;
use http::{Method, Response};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use std::sync::Arc;

/// Stored bodies larger than this are encoded on the blocking pool, not
/// on the thread serving connections.
const INLINE_MAX: usize = 128 << 10;

/// A farm's compression: its settings (none when off) and its counters,
/// which exist either way since a rule can turn compression on.
#[derive(Debug)]
pub struct FarmCompression {
    pub spec: Option<CompressSpec>,
    pub stats: Arc<CompressStats>,
}

/// A rule's `compression`: `None` leaves the farm's; `Some(None)` turns it
/// off; `Some(Some(spec))` replaces it.
pub type RuleCompression<'a> = Option<Option<&'a CompressSpec>>;

/// The rules' `compression` sections by rule index (`None` for a rule
/// without one), compiled beside the rule set: `rules/` sits below this
/// stage and only tells which matching rule has the last word.
#[derive(Debug, Default)]
pub struct RuleSpecs(Box<[Option<Option<CompressSpec>>]>);

impl RuleSpecs {
    pub fn new(by_rule: Vec<Option<Option<CompressSpec>>>) -> RuleSpecs {
        RuleSpecs(by_rule.into())
    }

    /// The compression rule `i` sets.
    pub fn get(&self, i: usize) -> RuleCompression<'_> {
        self.0.get(i)?.as_ref().map(Option::as_ref)
    }
}

/// What was decided from the request, for [`apply`].
pub struct Plan<'a> {
    spec: &'a CompressSpec,
    stats: &'a Arc<CompressStats>,
    choice: Option<Algorithm>,
}

/// The compression plan for a request to `farm` (`rule` may override the
/// farm's settings); `None` when nothing is to be done.
pub fn plan<'a>(
    farm: &'a FarmCompression,
    rule: RuleCompression<'a>,
    req: &http::request::Parts,
) -> Option<Plan<'a>> {
    let spec = rule.unwrap_or(farm.spec.as_ref())?;
    if req.method == Method::HEAD {
        return None;
    }
    Some(Plan {
        spec,
        stats: &farm.stats,
        choice: negotiate::choose(&req.headers, &spec.preference),
    })
}

impl Plan<'_> {
    /// Might the response be sent encoded? Only then is a cache hit worth
    /// offering with its stored body ([`StoredBody`]).
    pub fn may_encode(&self) -> bool {
        self.choice.is_some()
    }
}

/// Compresses `resp` when the plan and the response allow it.
pub async fn apply(plan: Plan<'_>, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let stored = resp.extensions_mut().remove::<StoredBody>();
    let Verdict::May(len) = decide::verdict(plan.spec, &resp) else {
        return resp;
    };
    decide::add_vary(resp.headers_mut());
    let Some(a) = plan.choice else {
        return resp;
    };
    if let Some(stored) = stored {
        return from_store(&plan, a, stored, resp).await;
    }
    let Ok(enc) = Encoder::new(a, plan.spec.level(a), len) else {
        return resp;
    };
    let (mut parts, mut body) = resp.into_parts();
    let mut prefix = None;
    if len.is_none() {
        match prefetch(&mut body, plan.spec.min_size).await {
            Prefetched::Enough(p) => prefix = p,
            Prefetched::Whole(small) => return Response::from_parts(parts, small),
        }
    }
    decide::encoded_head(&mut parts.headers, a, None);
    let body = CompressBody::new(body, enc, prefix, a, plan.stats.clone());
    Response::from_parts(parts, ProxyBody::boxed(body.boxed_unsync()))
}

/// A cache hit sent encoded: the variant kept from an earlier hit, or the
/// stored body encoded now and kept.
async fn from_store(
    plan: &Plan<'_>,
    a: Algorithm,
    stored: StoredBody,
    mut resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let stored = stored.0;
    let (encoded, work) = match stored.variant(a) {
        Some(v) => (v, false),
        None => {
            let level = plan.spec.level(a);
            let body = stored.body().clone();
            let made = if body.len() <= INLINE_MAX {
                encoder::compress_all(a, level, &body).ok()
            } else {
                tokio::task::spawn_blocking(move || encoder::compress_all(a, level, &body))
                    .await
                    .ok()
                    .and_then(Result::ok)
            };
            let Some(made) = made else { return resp };
            (stored.keep(a, made), true)
        }
    };
    let identity = stored.body().len() as u64;
    plan.stats.count(a, work, identity, encoded.len() as u64);
    decide::encoded_head(resp.headers_mut(), a, Some(encoded.len()));
    *resp.body_mut() = ProxyBody::full(encoded);
    resp
}

enum Prefetched {
    /// At least `min_size` bytes (`None` when `min_size` is 0).
    Enough(Option<Bytes>),
    /// The whole body, smaller than `min_size`, to send as it is.
    Whole(ProxyBody),
}

/// Reads a body of unknown length until `min` bytes or its end: whether it
/// is worth compressing is known only then, and the response head waits
/// for that (at most `min` bytes are held).
async fn prefetch(body: &mut ProxyBody, min: u64) -> Prefetched {
    if min == 0 {
        return Prefetched::Enough(None);
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut seen = 0u64;
    let mut end: Option<Result<Frame<Bytes>, BoxError>> = None;
    while !body.is_end_stream() {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    seen += data.len() as u64;
                    chunks.push(data);
                    if seen >= min {
                        return Prefetched::Enough(Some(concat(chunks)));
                    }
                }
                Err(trailers) => {
                    end = Some(Ok(trailers));
                    break;
                }
            },
            Some(Err(e)) => {
                end = Some(Err(e));
                break;
            }
        }
    }
    let data = concat(chunks);
    let Some(last) = end else {
        return Prefetched::Whole(ProxyBody::full(data));
    };
    // Trailers or a broken body: replayed after the data, as they came.
    let frames = [Some(Ok(Frame::data(data))), Some(last)];
    let replay =
        http_body_util::StreamBody::new(futures_util::stream::iter(frames.into_iter().flatten()));
    Prefetched::Whole(ProxyBody::boxed(replay.boxed_unsync()))
}

fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut all = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in &chunks {
        all.extend_from_slice(c);
    }
    Bytes::from(all)
}
