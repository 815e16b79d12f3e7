//! The connection to Redis every cluster operation goes through: one
//! multiplexed connection for commands (pub/sub has its own, in
//! `operator.rs`), each operation under the section's `timeout`, all behind
//! one [`Breaker`]. The URLs are tried in order whenever a connection is
//! needed, so a list names a primary and its stand-ins.
//!
//! [`Redis`] is the reusable handle: other tier-wide features (rate limits
//! with a cluster scope) take it from [`super::Tier::redis`] and call
//! [`Redis::run`]; they inherit the timeout, the breaker, the reconnects
//! and the counters, and never wait on a dead Redis.

use super::breaker::{Breaker, Flip};
use super::stats::ClusterStats;
use crate::config::cluster::ClusterSpec;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Why a cluster operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the Redis circuit breaker is open")]
    BreakerOpen,
    #[error("Redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("cannot connect to Redis: {0}")]
    Connect(String),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A tier's Redis: clients for its URLs, the current connection, the breaker.
pub struct Redis {
    pub spec: Arc<ClusterSpec>,
    clients: Vec<(String, Client)>,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// One connect at a time; the others wait for its result.
    connecting: tokio::sync::Mutex<()>,
    pub breaker: Breaker,
    stats: Arc<ClusterStats>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("urls", &self.urls()).finish()
    }
}

impl Redis {
    /// Clients for `spec`'s URLs (no connection yet). URLs were checked by
    /// the config build; one that still does not open is left out, logged.
    pub fn new(spec: Arc<ClusterSpec>, stats: Arc<ClusterStats>) -> Redis {
        let clients = spec
            .urls
            .iter()
            .filter_map(|url| match client(url, &spec) {
                Ok(c) => Some((redacted(url), c)),
                Err(e) => {
                    tracing::error!("cluster: Redis URL {} left out: {e}", redacted(url));
                    None
                }
            })
            .collect();
        Redis {
            breaker: Breaker::new(spec.breaker_failures, spec.breaker_cooldown),
            spec,
            clients,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            stats,
        }
    }

    /// The URLs, passwords left out.
    pub fn urls(&self) -> Vec<String> {
        self.clients.iter().map(|(u, _)| u.clone()).collect()
    }

    /// Is the breaker closed (Redis answering)?
    pub fn is_up(&self) -> bool {
        self.breaker.is_closed()
    }

    /// Runs `op` on the command connection: at once `BreakerOpen` while the
    /// breaker is open; otherwise connected if need be, and bounded by the
    /// timeout. `what` names it in the failure counter.
    pub async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, ClusterError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(ClusterError::BreakerOpen);
        }
        let result = match self.connection().await {
            Ok(conn) => match tokio::time::timeout(self.spec.timeout, op(conn)).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(ClusterError::Redis(e)),
                Err(_) => Err(ClusterError::Timeout(self.spec.timeout)),
            },
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => self.flipped(self.breaker.success(), None),
            Err(e) => {
                if !matches!(e, ClusterError::Redis(r) if !dead(r)) {
                    // A slow or broken connection is not reused: the next
                    // operation connects afresh (maybe to another URL).
                    *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                self.stats.failed(what);
                self.flipped(self.breaker.failure(), Some(e));
            }
        }
        result
    }

    /// [`Redis::run`] that also counts an operation the open breaker
    /// refused, so an outage shows in the counter of `what` even when other
    /// operations opened the breaker first. For rare operations (ACME), not
    /// per request: the counter takes a lock.
    pub async fn run_counted<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, ClusterError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = self.run(what, op).await;
        if matches!(result, Err(ClusterError::BreakerOpen)) {
            self.stats.failed(what);
        }
        result
    }

    fn flipped(&self, flip: Flip, error: Option<&ClusterError>) {
        match flip {
            Flip::Opened => {
                self.stats.set_up(false);
                tracing::error!(
                    "cluster: Redis unreachable ({}); the breaker is open: serving on the last known tier state",
                    error.map_or_else(String::new, |e| e.to_string())
                );
            }
            Flip::Closed => {
                self.stats.set_up(true);
                tracing::info!("cluster: Redis answers again; the breaker is closed");
            }
            Flip::None => {}
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, ClusterError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.spec.timeout))
            .set_response_timeout(Some(self.spec.timeout));
        let mut last = String::from("no usable URL");
        for (url, client) in &self.clients {
            let attempt = client.get_multiplexed_async_connection_with_config(&config);
            match tokio::time::timeout(self.spec.timeout, attempt).await {
                Ok(Ok(c)) => {
                    *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                    return Ok(c);
                }
                Ok(Err(e)) => last = format!("{url}: {e}"),
                Err(_) => last = format!("{url}: no answer within {:?}", self.spec.timeout),
            }
        }
        Err(ClusterError::Connect(last))
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A client for the pub/sub connection: the first URL that connects.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.iter().map(|(_, c)| c)
    }
}

/// An error after which the connection is not trusted any more.
fn dead(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

fn client(url: &str, spec: &ClusterSpec) -> RedisResult<Client> {
    let mut info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &spec.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &spec.password {
        settings = settings.set_password(password);
    }
    info = info.set_redis_settings(settings);
    Client::open(info)
}

/// `url` without its password, for logs and the API.
pub fn redacted(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redacted("redis://user:secret@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            super::redacted("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
