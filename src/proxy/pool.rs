//! Idle keep-alive connections to backends, one pool per backend address
//! (scheme + host:port), shared by every farm and snapshot that names it.
//!
//! Each farm of a snapshot holds its servers' pools (`FarmRuntime.pools`), so a
//! request finds its idle connections without a map lookup or hashing (the
//! general-purpose pool this replaces hashed its key twice per request).
//! The idle list is a stack: the most recently used connection goes out
//! first, so under light load a few connections stay warm and the rest age
//! out. A connection goes back when its response body has been read to the
//! end (`Checkin`); one abandoned mid-body is closed instead.
//!
//! An idle connection is retired before its backend would close it: after
//! the farm's `backend_idle_timeout`, or sooner when the backend announced
//! `Keep-Alive: timeout=N` (less a margin, [`keep_for`]). A backend closes an
//! idle connection on its own clock; a request written in the same instant
//! meets a closed socket after its bytes went out, and may not be retried.
//! Retiring first leaves that race to us, where it costs a reconnect.

use super::body::UpstreamBody;
use super::h2pool::{H2Conns, Stream};
use crate::farm::Prune;
use http::uri::{Authority, Scheme};
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Idle connections kept per backend address; more are closed on return.
pub const MAX_IDLE_PER_ADDRESS: usize = 1024;
/// How often the sweeper closes retired connections (checkout never hands
/// one out, whenever the sweeper ran last).
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Taken off a backend's announced keep-alive timeout: the backend's timer
/// started when it finished writing, ours when we finished reading, and a
/// request needs time to reach it.
pub const KEEP_ALIVE_MARGIN: Duration = Duration::from_millis(1000);

type Sender = SendRequest<UpstreamBody>;

struct Idle {
    sender: Sender,
    /// Retired (never handed out again) from this instant.
    until: Instant,
    /// 0, or the tag of the PROXY protocol header the connection sent
    /// (`send_proxy.rs`): it only serves requests with the same header.
    tag: u64,
}

/// The idle connections to one backend address, and its HTTP/2
/// connections (`h2pool.rs`) when a farm speaks HTTP/2 to it.
pub struct BackendPool {
    address: Arc<str>,
    idle: Mutex<Vec<Idle>>,
    pub h2: H2Conns,
    /// The HTTP/1 engine's fast path keeps its own connections (raw
    /// streams with their read buffer, `proxy::fast`), by the same rules,
    /// one list per serving thread (`ground::worker`): a socket is
    /// registered with the thread that opened it and used there only, so a
    /// request's readiness never crosses threads. Made at first use, when
    /// the serving threads run (the pool itself is made with the config).
    raw: std::sync::OnceLock<Box<[Mutex<Vec<RawIdle>>]>>,
}

/// A backend connection of the engine's fast path, with its reused read
/// buffer and response parser. Boxed once, when the connection is made:
/// a request hands it from the pool to the exchange and back (five moves
/// of 232 bytes a request when it was not).
pub struct RawConn {
    pub io: super::connector::BackendStream,
    pub buf: crate::http1::ReadBuf,
    pub parser: crate::http1::ResponseParser,
}

struct RawIdle {
    conn: Box<RawConn>,
    until: Instant,
}

impl std::fmt::Debug for BackendPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendPool")
            .field("address", &self.address)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl BackendPool {
    pub fn new(address: &str) -> Self {
        BackendPool {
            address: address.into(),
            idle: Mutex::new(Vec::new()),
            h2: H2Conns::default(),
            raw: std::sync::OnceLock::new(),
        }
    }

    /// The most recently returned idle fast-path connection not retired
    /// (a retired one met on the way is closed). Whether the backend
    /// closed it meanwhile shows when it is used.
    /// `now`: the request's send time, read by the caller.
    pub fn checkout_raw(&self, now: Instant) -> Option<Box<RawConn>> {
        let mut idle = self.raw_here().lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if c.until > now {
                return Some(c.conn);
            }
        }
        None
    }

    /// Keeps a fast-path connection for up to `keep` from `now` (when its
    /// response head arrived: for a long body, earlier than its end, so
    /// the connection is retired early, never late).
    pub fn checkin_raw(&self, mut conn: Box<RawConn>, keep: Duration, now: Instant) {
        if keep.is_zero() {
            return;
        }
        // An idle connection holds no buffers: its read buffer goes back
        // to the thread's pool (taken again by the next response).
        conn.buf.release();
        conn.parser.release();
        let until = now + keep;
        let mut idle = self.raw_here().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_PER_ADDRESS {
            idle.push(RawIdle { conn, until });
        }
    }

    /// The most recently returned idle connection with `tag` (0: one that
    /// sent no PROXY header) that is still open and not retired. Retired
    /// ones met on the way are closed.
    pub fn checkout(&self, tag: u64) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = if idle.is_empty() {
            return None;
        } else {
            Instant::now()
        };
        while let Some(i) = idle.iter().rposition(|c| c.tag == tag) {
            let c = idle.remove(i);
            if c.until > now && !c.sender.is_closed() {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request for up to `keep` (closed ones
    /// and those past the cap are dropped, which closes them).
    pub fn checkin(&self, sender: Sender, keep: Duration, tag: u64) {
        if sender.is_closed() || keep.is_zero() {
            return;
        }
        let until = Instant::now() + keep;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_PER_ADDRESS {
            idle.push(Idle { sender, until, tag });
        }
    }

    /// Closes connections retired by `now` and forgets closed ones.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let before = idle.len();
        idle.retain(|c| c.until > now && !c.sender.is_closed());
        let closed = before - idle.len() + self.h2.sweep();
        let mut swept = 0;
        for shard in self.raw.get().into_iter().flatten() {
            let mut raw = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = raw.len();
            raw.retain(|c| c.until > now);
            swept += before - raw.len();
        }
        closed + swept
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
            + self
                .raw
                .get()
                .into_iter()
                .flatten()
                .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
                .sum::<usize>()
    }

    /// This serving thread's list of idle fast-path connections.
    fn raw_here(&self) -> &Mutex<Vec<RawIdle>> {
        let shards = self.raw.get_or_init(|| {
            (0..crate::ground::worker::count())
                .map(|_| Mutex::new(Vec::new()))
                .collect()
        });
        &shards[crate::ground::worker::shard(shards.len())]
    }

    pub fn address(&self) -> &Arc<str> {
        &self.address
    }
}

/// How long a connection may sit idle: the farm's `backend_idle_timeout`,
/// or less when the backend's response announced `Keep-Alive: timeout=N`
/// (N less [`KEEP_ALIVE_MARGIN`], at least half of N). Must be asked
/// before the response's hop-by-hop headers are removed.
pub fn keep_for(farm_idle: Duration, response: &http::HeaderMap) -> Duration {
    match announced_timeout(response) {
        Some(n) => farm_idle.min(n.saturating_sub(KEEP_ALIVE_MARGIN).max(n / 2)),
        None => farm_idle,
    }
}

/// [`keep_for`] from a `Keep-Alive` field value as the engine reads it.
pub fn keep_for_value(farm_idle: Duration, keep_alive: Option<&[u8]>) -> Duration {
    match keep_alive
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(parse_timeout)
    {
        Some(n) => farm_idle.min(n.saturating_sub(KEEP_ALIVE_MARGIN).max(n / 2)),
        None => farm_idle,
    }
}

/// `timeout=N` (seconds) of a `Keep-Alive` response header (RFC 2068
/// §19.7.1.1; Node, Apache and others send it).
fn announced_timeout(h: &http::HeaderMap) -> Option<Duration> {
    parse_timeout(h.get("keep-alive")?.to_str().ok()?)
}

fn parse_timeout(v: &str) -> Option<Duration> {
    v.split(',').find_map(|p| {
        let (k, n) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        let secs: u64 = n.trim().trim_matches('"').parse().ok()?;
        Some(Duration::from_secs(secs))
    })
}

/// Gives a connection back to its pool once its response has been read to
/// the end. Dropped without `give_back`, it closes the connection. For
/// HTTP/2 it holds the request's stream, freed either way.
pub struct Checkin(Held);

enum Held {
    Http1 {
        pool: Arc<BackendPool>,
        sender: Sender,
        keep: Duration,
        /// The connection's PROXY header tag, or 0.
        tag: u64,
    },
    Http2(#[allow(dead_code)] Stream),
}

impl Checkin {
    /// `keep`: how long the connection may then sit idle ([`keep_for`]).
    /// `tag`: the connection's PROXY header tag, or 0.
    pub fn new(pool: Arc<BackendPool>, sender: Sender, keep: Duration, tag: u64) -> Self {
        Checkin(Held::Http1 {
            pool,
            sender,
            keep,
            tag,
        })
    }
    /// The stream of an HTTP/2 request.
    pub fn stream(stream: Stream) -> Self {
        Checkin(Held::Http2(stream))
    }
    pub fn give_back(self) {
        if let Held::Http1 {
            pool,
            sender,
            keep,
            tag,
        } = self.0
        {
            pool.checkin(sender, keep, tag);
        }
    }
}

/// Every backend pool by address. Pools live as long as a snapshot's
/// server refers to them; touched when snapshots are built, never per
/// request (the sweeper walks it every few seconds).
#[derive(Default, Debug)]
pub struct PoolRegistry {
    map: Mutex<HashMap<String, Weak<BackendPool>>>,
}

impl PoolRegistry {
    /// The pool for `scheme://authority`, shared with every other server
    /// at the same address.
    pub fn get_or_create(&self, scheme: &Scheme, authority: &Authority) -> Arc<BackendPool> {
        self.get_or_create_key(format!("{scheme}://{authority}"))
    }

    /// The pool of `server`: by address, and for a member of a DNS-named
    /// server by the address it connects to as well (each of the name's
    /// addresses has its own connections).
    pub fn for_server(&self, server: &crate::farm::Server) -> Arc<BackendPool> {
        match server.connect_to() {
            None => self.get_or_create(&server.scheme, &server.authority),
            Some(at) => {
                self.get_or_create_key(format!("{}://{}#{at}", server.scheme, server.authority))
            }
        }
    }

    fn get_or_create_key(&self, key: String) -> Arc<BackendPool> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = map.get(&key).and_then(Weak::upgrade) {
            return pool;
        }
        let pool = Arc::new(BackendPool::new(&key));
        map.insert(key, Arc::downgrade(&pool));
        pool
    }

    /// Closes retired connections. Returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let pools: Vec<Arc<BackendPool>> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.values().filter_map(Weak::upgrade).collect()
        };
        pools.iter().map(|p| p.sweep(now)).sum()
    }
}

impl Prune for PoolRegistry {
    /// Forgets addresses no snapshot uses any more (their connections
    /// closed when the last server holding the pool went away).
    fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, p| p.strong_count() > 0);
    }
}

/// Runs the sweeper until the registry is gone.
pub fn spawn_sweeper(registry: Weak<PoolRegistry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(reg) = registry.upgrade() else { break };
            let closed = reg.sweep();
            if closed > 0 {
                tracing::debug!("closed {closed} idle backend connection(s)");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pool_per_address_while_used() {
        let reg = PoolRegistry::default();
        let a: Authority = "127.0.0.1:9001".parse().unwrap_or_else(|_| unreachable!());
        let b: Authority = "127.0.0.1:9002".parse().unwrap_or_else(|_| unreachable!());
        let p1 = reg.get_or_create(&Scheme::HTTP, &a);
        let p2 = reg.get_or_create(&Scheme::HTTP, &a);
        assert!(Arc::ptr_eq(&p1, &p2));
        assert!(!Arc::ptr_eq(&p1, &reg.get_or_create(&Scheme::HTTPS, &a)));
        assert!(!Arc::ptr_eq(&p1, &reg.get_or_create(&Scheme::HTTP, &b)));
        assert_eq!(&**p1.address(), "http://127.0.0.1:9001");
        drop((p1, p2));
        reg.prune();
        assert!(reg.map.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    }

    #[test]
    fn announced_keep_alive_shortens_the_idle_time() {
        let farm = Duration::from_millis(1500);
        let mut h = http::HeaderMap::new();
        assert_eq!(keep_for(farm, &h), farm);
        h.insert(
            "keep-alive",
            http::HeaderValue::from_static("timeout=2, max=100"),
        );
        assert_eq!(keep_for(farm, &h), Duration::from_secs(1));
        h.insert(
            "keep-alive",
            http::HeaderValue::from_static("max=5, Timeout=1"),
        );
        assert_eq!(keep_for(farm, &h), Duration::from_millis(500));
        h.insert("keep-alive", http::HeaderValue::from_static("timeout=0"));
        assert_eq!(keep_for(farm, &h), Duration::ZERO);
        h.insert("keep-alive", http::HeaderValue::from_static("timeout=60"));
        assert_eq!(keep_for(farm, &h), farm);
        h.insert("keep-alive", http::HeaderValue::from_static("timeout=x"));
        assert_eq!(keep_for(farm, &h), farm);
    }
}
