//! The status page's short memory: one sample a second for the last
//! [`CAPACITY`] seconds, per farm and per server, plus the state changes
//! (health, admin, reload) to mark on the charts' time axis.
//!
//! Nothing here runs per request. A background tick (started by
//! `running.rs`) reads the
//! counters the request path already keeps (requests, failures, status
//! codes, the latency histogram, in flight, cache results) and turns the
//! difference from the previous tick into a sample. Rings are allocated
//! once, when a server is first seen, and keyed by farm and server name,
//! so a server's history survives reloads that keep it; a server gone from
//! the config for longer than the window is forgotten.

use crate::cache::CacheResult;
use crate::config::FarmRuntime;
use crate::farm::Server;
use crate::metrics::histogram::HistogramSnapshot;
use crate::metrics::FailureReason;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Samples kept per ring: 15 minutes at one a second.
pub const CAPACITY: usize = 900;
/// Marks kept per farm.
pub const MARKS: usize = 256;
/// How often the tick samples.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One second of one server or one farm. Rates are per second over the
/// time since the previous sample; latencies are of the responses that
/// arrived in that time (null when none did).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Unix time of the sample, in seconds.
    pub t: u64,
    pub requests_per_second: f32,
    /// 5xx responses plus failed connections, timeouts and resets.
    pub errors_per_second: f32,
    pub in_flight: u32,
    pub p50_ms: Option<f32>,
    pub p99_ms: Option<f32>,
    /// Farms with a cache only: the share of cache lookups answered from
    /// the store (hit, stale, consolidated, revalidated) in that second;
    /// null when the farm has no cache or saw no lookup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit_ratio: Option<f32>,
}

/// A state change to mark on the time axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    pub t: u64,
    /// The server it concerns; null for a farm-wide event (a reload).
    pub server: Option<String>,
    /// The new state (`healthy`, `unhealthy`, `draining`, `disabled`), or
    /// `reload` / `reload failed`.
    pub kind: String,
}

/// Counter readings of one server at one tick.
#[derive(Debug, Clone, Default)]
struct Reading {
    requests: u64,
    errors: u64,
    latency: Option<HistogramSnapshot>,
    state: &'static str,
}

#[derive(Debug)]
struct Ring {
    samples: VecDeque<Sample>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            samples: VecDeque::with_capacity(CAPACITY),
        }
    }

    fn push(&mut self, s: Sample) {
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    fn last(&self, seconds: u64, now: u64) -> Vec<Sample> {
        let from = now.saturating_sub(seconds);
        let start = self.samples.partition_point(|s| s.t <= from);
        self.samples.range(start..).copied().collect()
    }
}

#[derive(Debug)]
struct ServerHistory {
    ring: Ring,
    prev: Reading,
    seen: u64,
}

#[derive(Debug)]
struct FarmHistory {
    ring: Ring,
    marks: VecDeque<Mark>,
    cache_prev: Option<[u64; CacheResult::ALL.len()]>,
    seen: u64,
}

#[derive(Debug, Default)]
struct Inner {
    farms: HashMap<Arc<str>, FarmHistory>,
    servers: HashMap<(Arc<str>, Arc<str>), ServerHistory>,
    reloads: Option<(u64, u64)>,
    last_tick: Option<SystemTime>,
}

/// The history of every farm and server; read by `GET /api/history`.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Inner>,
}

/// What `GET /api/history` answers for one farm.
#[derive(Debug, Serialize)]
pub struct FarmSeries {
    pub farm: String,
    pub interval_seconds: u64,
    pub samples: Vec<Sample>,
    pub marks: Vec<Mark>,
    pub servers: Vec<ServerSeries>,
}

#[derive(Debug, Serialize)]
pub struct ServerSeries {
    pub server: String,
    pub samples: Vec<Sample>,
}

impl History {
    /// Takes one sample of every farm and server of `farms`. `reloads`:
    /// the gateway's succeeded and failed reload counts.
    pub fn tick(&self, farms: &[FarmRuntime], reloads: (u64, u64), now: SystemTime) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let t = unix(now);
        let dt = inner
            .last_tick
            .and_then(|prev| now.duration_since(prev).ok())
            .map_or(1.0, |d| d.as_secs_f32().max(0.001));
        inner.last_tick = Some(now);
        let reload_mark = match inner.reloads.replace(reloads) {
            Some((ok, _)) if reloads.0 > ok => Some("reload"),
            Some((_, failed)) if reloads.1 > failed => Some("reload failed"),
            _ => None,
        };
        let inner = &mut *inner;
        for farm in farms {
            let fh = inner
                .farms
                .entry(farm.name.clone())
                .or_insert_with(|| FarmHistory {
                    ring: Ring::new(),
                    marks: VecDeque::with_capacity(MARKS),
                    cache_prev: None,
                    seen: t,
                });
            fh.seen = t;
            if let Some(kind) = reload_mark {
                push_mark(
                    &mut fh.marks,
                    Mark {
                        t,
                        server: None,
                        kind: kind.into(),
                    },
                );
            }
            let mut total = Sample {
                t,
                ..Sample::default()
            };
            let mut latency: Option<HistogramSnapshot> = None;
            for server in &farm.servers {
                let now_reading = read(server);
                let key = (farm.name.clone(), server.name.clone());
                let sh = inner.servers.entry(key).or_insert_with(|| ServerHistory {
                    ring: Ring::new(),
                    prev: Reading {
                        state: now_reading.state,
                        ..now_reading.clone()
                    },
                    seen: t,
                });
                sh.seen = t;
                if sh.prev.state != now_reading.state {
                    push_mark(
                        &mut fh.marks,
                        Mark {
                            t,
                            server: Some(server.name.to_string()),
                            kind: now_reading.state.into(),
                        },
                    );
                }
                let delta = now_reading
                    .latency
                    .as_ref()
                    .map(|h| h.since(sh.prev.latency.as_ref()));
                let sample = Sample {
                    t,
                    requests_per_second: rate(now_reading.requests, sh.prev.requests, dt),
                    errors_per_second: rate(now_reading.errors, sh.prev.errors, dt),
                    in_flight: u32::try_from(server.state.in_flight()).unwrap_or(u32::MAX),
                    p50_ms: delta.as_ref().and_then(|d| quantile(d, 0.5)),
                    p99_ms: delta.as_ref().and_then(|d| quantile(d, 0.99)),
                    cache_hit_ratio: None,
                };
                sh.ring.push(sample);
                sh.prev = now_reading;
                total.requests_per_second += sample.requests_per_second;
                total.errors_per_second += sample.errors_per_second;
                total.in_flight = total.in_flight.saturating_add(sample.in_flight);
                if let Some(d) = delta {
                    latency = Some(match latency {
                        Some(sum) => sum.plus(&d),
                        None => d,
                    });
                }
            }
            total.p50_ms = latency.as_ref().and_then(|d| quantile(d, 0.5));
            total.p99_ms = latency.as_ref().and_then(|d| quantile(d, 0.99));
            if let Some(cache) = &farm.cache {
                let counts = CacheResult::ALL.map(|r| cache.store.stats.get(r));
                if let Some(prev) = fh.cache_prev {
                    total.cache_hit_ratio = hit_ratio(&counts, &prev);
                }
                fh.cache_prev = Some(counts);
            }
            fh.ring.push(total);
        }
        // Forget what left the config longer than the window ago.
        let horizon = t.saturating_sub(CAPACITY as u64);
        inner.farms.retain(|_, f| f.seen >= horizon);
        inner.servers.retain(|_, s| s.seen >= horizon);
    }

    /// The last `seconds` of `farm` (and of its servers named in `only`,
    /// or all of them); None when the farm has no history.
    pub fn farm(&self, farm: &FarmRuntime, only: Option<&str>, seconds: u64) -> Option<FarmSeries> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let fh = inner.farms.get(&farm.name)?;
        let now = fh.ring.samples.back().map_or(0, |s| s.t);
        let from = now.saturating_sub(seconds);
        let servers = farm
            .servers
            .iter()
            .filter(|s| only.is_none_or(|o| &*s.name == o))
            .filter_map(|s| {
                let sh = inner.servers.get(&(farm.name.clone(), s.name.clone()))?;
                Some(ServerSeries {
                    server: s.name.to_string(),
                    samples: sh.ring.last(seconds, now),
                })
            })
            .collect();
        Some(FarmSeries {
            farm: farm.name.to_string(),
            interval_seconds: INTERVAL.as_secs(),
            samples: fh.ring.last(seconds, now),
            marks: fh
                .marks
                .iter()
                .filter(|m| m.t > from)
                .filter(|m| only.is_none() || m.server.is_none() || m.server.as_deref() == only)
                .cloned()
                .collect(),
            servers,
        })
    }
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            t: 0,
            requests_per_second: 0.0,
            errors_per_second: 0.0,
            in_flight: 0,
            p50_ms: None,
            p99_ms: None,
            cache_hit_ratio: None,
        }
    }
}

fn read(server: &Server) -> Reading {
    let st = &server.state;
    let stats = &st.stats;
    let five_xx: u64 = stats
        .codes
        .iter()
        .filter(|(code, _)| (500..600).contains(code))
        .map(|(_, n)| n)
        .sum();
    let failed: u64 = [
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Reset,
    ]
    .into_iter()
    .map(|r| stats.failures(r))
    .sum();
    Reading {
        requests: st.requests.load(std::sync::atomic::Ordering::Relaxed),
        errors: five_xx + failed,
        latency: Some(stats.latency.snapshot()),
        state: st.state_name(),
    }
}

fn push_mark(marks: &mut VecDeque<Mark>, m: Mark) {
    if marks.len() == MARKS {
        marks.pop_front();
    }
    marks.push_back(m);
}

fn rate(now: u64, prev: u64, dt: f32) -> f32 {
    now.saturating_sub(prev) as f32 / dt
}

fn quantile(h: &HistogramSnapshot, q: f64) -> Option<f32> {
    h.quantile_ms(q).map(|v| v as f32)
}

/// Lookups answered from the store over all lookups, between two readings
/// of the cache counters (in `CacheResult::ALL` order); bypasses are not
/// lookups.
fn hit_ratio(
    now: &[u64; CacheResult::ALL.len()],
    prev: &[u64; CacheResult::ALL.len()],
) -> Option<f32> {
    let d = |r: CacheResult| {
        let i = CacheResult::ALL.iter().position(|&x| x == r).unwrap_or(0);
        now[i].saturating_sub(prev[i])
    };
    let served = d(CacheResult::Hit)
        + d(CacheResult::Stale)
        + d(CacheResult::Consolidated)
        + d(CacheResult::Revalidated)
        + d(CacheResult::StaleRevalidate);
    let lookups = served + d(CacheResult::Miss);
    (lookups > 0).then(|| served as f32 / lookups as f32)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_capacity_samples() {
        let mut r = Ring::new();
        for t in 0..(CAPACITY as u64 + 10) {
            r.push(Sample {
                t,
                ..Sample::default()
            });
        }
        assert_eq!(r.samples.len(), CAPACITY);
        assert_eq!(r.samples.front().map(|s| s.t), Some(10));
        let last = r.last(5, CAPACITY as u64 + 9);
        assert_eq!(
            last.iter().map(|s| s.t).collect::<Vec<_>>(),
            [
                CAPACITY as u64 + 5,
                CAPACITY as u64 + 6,
                CAPACITY as u64 + 7,
                CAPACITY as u64 + 8,
                CAPACITY as u64 + 9
            ]
        );
    }

    #[test]
    fn hit_ratio_counts_what_the_store_answered() {
        let prev = [10, 10, 0, 50, 0, 0, 0];
        // 6 hits, 2 misses, 1 stale, 7 bypasses, 1 consolidated.
        let now = [16, 12, 1, 57, 1, 0, 0];
        assert_eq!(hit_ratio(&now, &prev), Some(8.0 / 10.0));
        assert_eq!(hit_ratio(&prev, &prev), None, "no lookup, no ratio");
    }

    #[test]
    fn a_sample_is_small() {
        // The memory the docs state: CAPACITY samples per server and farm.
        assert_eq!(
            std::mem::size_of::<Sample>(),
            48,
            "docs/observability.md states 42 KiB a ring"
        );
    }
}
