//! Every metric farmgate exports, by name, in one place (as sozu does), so
//! the docs, the dashboards and the code agree.
//!
//! Counters are named here WITHOUT their `_total` suffix: the OpenMetrics
//! encoder appends it, so `BACKEND_REQUESTS` is scraped as
//! `farmgate_backend_requests_total`. Histograms gain `_bucket`, `_sum` and
//! `_count`.

// === listeners ===
/// Counter `{listener,code}`: responses sent to clients, by status code.
pub const REQUESTS: &str = "farmgate_requests";
/// Gauge `{listener}`: open client connections.
pub const CONNECTIONS_ACTIVE: &str = "farmgate_connections_active";
pub const CONNECTIONS_PARKED: &str = "farmgate_connections_parked";
pub const CONNECTIONS_EVICTED: &str = "farmgate_connections_evicted";
/// Counter `{listener,reason}`: client connections closed on arrival, by
/// `reason` (`access`: the listener's access lists; `per_ip`:
/// `max_connections_per_ip`).
pub const CONNECTIONS_REFUSED: &str = "farmgate_connections_refused";
/// Counter `{listener,timeout}`: client connections cut off by
/// `header_timeout` (with a 408), `body_timeout` or `send_timeout`.
pub const CLIENT_TIMEOUTS: &str = "farmgate_client_timeouts";
/// Counter `{listener}`: client connections served.
pub const CONNECTIONS: &str = "farmgate_connections";
/// Counter `{listener}`: TLS handshakes completed (full and resumed).
pub const TLS_HANDSHAKES: &str = "farmgate_tls_handshakes";
/// Counter `{listener}`: TLS handshakes that resumed a session.
pub const TLS_RESUMED_HANDSHAKES: &str = "farmgate_tls_resumed_handshakes";
/// Counter `{listener}`: TLS handshakes that failed or timed out.
pub const TLS_HANDSHAKE_FAILURES: &str = "farmgate_tls_handshake_failures";
/// Counter `{listener,result}`: certificate files reloaded by the watcher.
pub const TLS_CERTIFICATE_RELOADS: &str = "farmgate_tls_certificate_reloads";
/// Gauge `{listener,domain}`: days until the listener's ACME certificate
/// expires (fractional; absent while the placeholder serves).
pub const ACME_CERTIFICATE_EXPIRY_DAYS: &str = "farmgate_acme_certificate_expiry_days";
/// Gauge `{listener,by}`: Unix time the listener's ACME certificate is
/// renewed at; `by` is `ari` (the CA's window, RFC 9773) or `two-thirds`.
pub const ACME_NEXT_RENEWAL: &str = "farmgate_acme_next_renewal_timestamp_seconds";
/// Counter `{listener}`: ACME certificates issued (first issue and renewals).
pub const ACME_RENEWALS: &str = "farmgate_acme_renewals";
/// Counter `{listener}`: ACME orders this instance placed (in a tier, only
/// the order lock's holder orders).
pub const ACME_ORDERS: &str = "farmgate_acme_orders";
/// Counter `{listener}`: ACME orders or renewals that failed.
pub const ACME_RENEWAL_FAILURES: &str = "farmgate_acme_renewal_failures";

// === backends ===
/// Counter `{farm,server,code}`: responses received from a server, by status.
pub const BACKEND_REQUESTS: &str = "farmgate_backend_requests";
/// Counter `{farm,server,code}`: gRPC calls a server answered, by its
/// `grpc-status` (0 OK to 16 UNAUTHENTICATED).
pub const BACKEND_GRPC_RESPONSES: &str = "farmgate_backend_grpc_responses";
/// Gauge `{farm,server}`: requests sent to a server whose response has not ended.
pub const BACKEND_ACTIVE_REQUESTS: &str = "farmgate_backend_active_requests";
/// Histogram `{farm,server}`: time to response headers, 1 ms to 30 s.
pub const BACKEND_RESPONSE_DURATION: &str = "farmgate_backend_response_duration_seconds";
/// Gauge `{farm,server}`: 1 while the server takes new requests, else 0.
pub const BACKEND_UP: &str = "farmgate_backend_up";
/// Gauge `{farm,server,state}`: 1 for the server's current state.
pub const BACKEND_STATE: &str = "farmgate_backend_state";
/// Counter `{farm,server,reason}`: failed attempts (connect, timeout, status, reset).
pub const BACKEND_FAILURES: &str = "farmgate_backend_failures";
/// Counter `{farm,server}`: request body bytes sent to the server.
pub const BACKEND_SENT_BYTES: &str = "farmgate_backend_sent_bytes";
/// Counter `{farm,server}`: response body bytes received from the server.
pub const BACKEND_RECEIVED_BYTES: &str = "farmgate_backend_received_bytes";
/// Counter `{farm,server,result}`: active health checks by result (`pass`,
/// or why it failed: `health::outcome::PROBE_RESULTS`).
pub const HEALTH_CHECKS: &str = "farmgate_health_checks";
/// Counter `{farm,server,to}`: times the server left (`down`) or came back
/// to (`up`) rotation for health reasons.
pub const BACKEND_HEALTH_TRANSITIONS: &str = "farmgate_backend_health_transitions";
/// Counter `{farm,server}`: times live traffic took the server out.
pub const BACKEND_LIVE_EJECTIONS: &str = "farmgate_backend_live_ejections";

// === farms ===
/// Gauge `{farm}`: 1 while the min_servers floor keeps unhealthy servers in rotation.
pub const FARM_MIN_SERVERS_ACTIVE: &str = "farmgate_farm_min_servers_active";
/// Gauge `{farm}`: servers of the farm that take new requests.
pub const FARM_SERVERS_UP: &str = "farmgate_farm_servers_up";
/// Counter `{farm,result}`: cache lookups (hit, miss, stale, bypass, consolidated).
pub const CACHE_REQUESTS: &str = "farmgate_cache_requests";
/// Gauge `{farm}`: bytes held by the farm's response cache.
pub const CACHE_SIZE_BYTES: &str = "farmgate_cache_size_bytes";
pub const CACHE_BACKGROUND_REVALIDATIONS: &str = "farmgate_cache_background_revalidations";
/// Counter `{farm,algorithm}`: responses sent compressed (streamed or a
/// cached variant).
pub const COMPRESSION_RESPONSES: &str = "farmgate_compression_responses";
/// Counter `{farm,algorithm}`: bodies run through an encoder (cache hits on
/// a stored variant do no such work).
pub const COMPRESSION_ENCODES: &str = "farmgate_compression_encodes";
/// Counter `{farm,algorithm}`: body bytes before compression.
pub const COMPRESSION_IN_BYTES: &str = "farmgate_compression_in_bytes";
/// Counter `{farm,algorithm}`: body bytes after compression.
pub const COMPRESSION_OUT_BYTES: &str = "farmgate_compression_out_bytes";

// === servers named by DNS ===
/// Counter `{name,result}`: lookups of a server's host name, `ok` or `failed`
/// (a failed one keeps the last answer).
pub const DNS_LOOKUPS: &str = "farmgate_dns_lookups";
/// Counter `{name}`: answers that differed from the one before.
pub const DNS_CHANGES: &str = "farmgate_dns_changes";
/// Gauge `{name}`: addresses in the name's current answer (its members).
pub const DNS_ADDRESSES: &str = "farmgate_dns_addresses";

// === config and process ===
/// Counter `{result}`: configuration reloads, success or failure.
pub const CONFIG_RELOADS: &str = "farmgate_config_reloads";
/// Gauge: unix time of the last configuration that loaded (start-up counts).
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "farmgate_config_last_reload_success_timestamp_seconds";
/// Counter `{result}`: binary upgrades that did not happen, `failed` (the new
/// process did not start) or `refused` (one under way, or not possible).
pub const UPGRADES_NOT_DONE: &str = "farmgate_upgrades_not_done";
/// Gauge `{thread}`: client connections each serving thread serves now
/// (`runtime.worker_threads` above one; thread 0 is the main thread).
pub const SERVING_THREAD_CONNECTIONS: &str = "farmgate_serving_thread_connections";
/// Info `{version}`: always 1 (scraped as `farmgate_build_info`).
pub const BUILD: &str = "farmgate_build";
/// Standard process metrics (as every Prometheus client library names them).
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const PROCESS_THREADS: &str = "process_threads";
pub const PROCESS_START_TIME: &str = "process_start_time_seconds";

// === cluster (a tier through Redis; present only with `cluster:`) ===
/// Gauge: 1 while Redis answers (the breaker is closed), else 0.
pub const CLUSTER_REDIS_UP: &str = "farmgate_cluster_redis_up";
/// Gauge: live instances in the tier (this one included), as last read.
pub const CLUSTER_INSTANCES: &str = "farmgate_cluster_instances";
/// Gauge: live instances whose config hash differs from this one's.
pub const CLUSTER_CONFIG_DRIFT: &str = "farmgate_cluster_config_drift_instances";
/// Gauge: seconds from an operator change on another instance to it
/// applying here (the last one applied).
pub const CLUSTER_SYNC_LAG: &str = "farmgate_cluster_sync_lag_seconds";
/// Gauge: seconds since the tier's operator state was last read.
pub const CLUSTER_LAST_SYNC_AGE: &str = "farmgate_cluster_last_sync_age_seconds";
/// Counter: operator changes taken from the tier and applied here.
pub const CLUSTER_CHANGES_APPLIED: &str = "farmgate_cluster_changes_applied";
/// Counter `{operation}`: Redis operations that failed (or were not tried
/// because the breaker was open).
pub const CLUSTER_OPERATIONS_FAILED: &str = "farmgate_cluster_operations_failed";
/// Gauge: TLS session ticket keys from the tier in use.
pub const CLUSTER_TICKET_KEYS: &str = "farmgate_cluster_ticket_keys";

// === label values ===
/// `farmgate_backend_state{state}` values.
pub const STATES: [&str; 4] = ["healthy", "unhealthy", "draining", "disabled"];
/// `farmgate_backend_failures_total{reason}` values, in [`FailureReason`] order.
///
/// [`FailureReason`]: super::server::FailureReason
pub const FAILURE_REASONS: [&str; 4] = ["connect", "timeout", "status", "reset"];
/// `farmgate_cache_requests_total{result}` values, in [`CacheResult`] order.
///
/// [`CacheResult`]: crate::cache::CacheResult
pub const CACHE_RESULTS: [&str; 7] = [
    "hit",
    "miss",
    "stale",
    "bypass",
    "consolidated",
    "revalidated",
    "stale_revalidate",
];

// === limits ===
/// Counter `{limit,result}`: requests a limit counted, by `result`
/// (`allowed`, `limited`: over the rate, `concurrent`: over `concurrent`).
pub const LIMIT_REQUESTS: &str = "farmgate_limit_requests";
/// Gauge `{limit}`: keys whose bucket is not full (their state matters).
pub const LIMIT_KEYS: &str = "farmgate_limit_keys";
/// Gauge `{limit}`: the most keys the limit's store holds.
pub const LIMIT_KEYS_CAPACITY: &str = "farmgate_limit_keys_capacity";
/// Gauge `{limit}`: bytes the limit's key store takes.
pub const LIMIT_MEMORY_BYTES: &str = "farmgate_limit_memory_bytes";
/// Counter `{limit}`: keys forgotten to make room while their bucket was not
/// yet full (the store is too small for the traffic).
pub const LIMIT_EVICTED_KEYS: &str = "farmgate_limit_evicted_keys";
/// Gauge `{limit}`: 1 while a `scope: cluster` limit cannot sync with the
/// tier and allows `rate / live instances` here; 0 when synced.
pub const LIMIT_CLUSTER_DEGRADED: &str = "farmgate_limit_cluster_degraded";
/// Counter `{limit,result}`: a cluster-scope limit's exchanges with the
/// tier (`ok`, `failed`).
pub const LIMIT_CLUSTER_SYNCS: &str = "farmgate_limit_cluster_syncs";
/// Counter `{limit}`: keys exchanged with the tier.
pub const LIMIT_CLUSTER_KEYS_SYNCED: &str = "farmgate_limit_cluster_keys_synced";
/// Counter `{limit}`: keys active in an interval beyond `sync_max_keys`,
/// counted locally until a later interval.
pub const LIMIT_CLUSTER_KEYS_UNSYNCED: &str = "farmgate_limit_cluster_keys_unsynced";
/// Counter `{limit}`: requests other instances admitted, charged to this
/// instance's buckets.
pub const LIMIT_CLUSTER_REMOTE_REQUESTS: &str = "farmgate_limit_cluster_remote_requests";

// === trace ===
/// Counter `{result}`: spans of sampled requests (`trace.export`), by
/// `result`: `exported` (the collector took them), `dropped` (the queue was
/// full), `failed` (the collector refused them or could not be reached).
pub const TRACE_SPANS: &str = "farmgate_trace_spans";
