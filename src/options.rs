//! The TypeScript shape of `createBreaker()` options. The binding reads options untyped
//! (`convert::raw_options`) so the core can validate types and ranges in one place and
//! name the bad field; this struct only generates the `.d.ts`. A Jest test checks that
//! its fields are exactly the core's option names (`optionNames()`).
//! Numeric options take a number or its decimal string (`process.env.X || 3000`).
#![allow(dead_code)]

use napi_derive::napi;

#[napi(object)]
pub struct BreakerOptions {
    /// Breaker name: the `name` label of every metric and the registry key. Default 'dnastore' (DNASTORE_BREAKER_NAME).
    pub name: Option<String>,
    /// Base URL that relative fire() paths resolve against (DNASTORE_URL).
    pub base_url: Option<String>,
    /// Per-attempt timeout in ms, headers and body included. Default 3000 (DNASTORE_TIMEOUT_MS).
    pub timeout: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Failure % in the rolling window that opens the circuit. Default 50 (DNASTORE_CIRCUIT_ERROR_THRESHOLD).
    pub error_threshold_percentage: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// ms the circuit stays open before a half-open trial. Default 10000 (DNASTORE_CIRCUIT_RESET_MS).
    pub reset_timeout: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Rolling window length in ms. Default 10000 (DNASTORE_CIRCUIT_ROLLING_MS).
    pub rolling_count_timeout: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Buckets in the rolling window. Default 10 (DNASTORE_CIRCUIT_ROLLING_BUCKETS).
    pub rolling_count_buckets: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Calls in the window before the percentage can trip. Default 20 (DNASTORE_CIRCUIT_VOLUME_THRESHOLD).
    pub volume_threshold: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Consecutive failures that trip regardless of percentage; 0 disables. Default 5 (DNASTORE_CIRCUIT_MAX_FAILURES).
    pub max_failures: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Trial calls while half-open. Default 3 (DNASTORE_CIRCUIT_HALF_OPEN_CALLS).
    pub half_open_max_calls: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Largest response body in bytes. Default 10 MiB (DNASTORE_MAX_RESPONSE_BYTES).
    pub max_response_bytes: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// Total attempts per call. Default 3 (DNASTORE_RETRY_MAX_ATTEMPTS).
    pub max_attempts: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Smallest backoff in ms. Default 100 (DNASTORE_RETRY_BASE_MS).
    pub retry_base_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Largest backoff in ms. Default 2000 (DNASTORE_RETRY_MAX_MS).
    pub retry_max_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Retries as % of recent calls. Default 20 (DNASTORE_RETRY_BUDGET_PERCENT).
    pub retry_budget_percent: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Retries always allowed per second. Default 10 (DNASTORE_RETRY_MIN_PER_SEC).
    pub retry_min_per_sec: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Cap on a Retry-After wait in ms. Default 5000 (DNASTORE_RETRY_AFTER_MAX_MS).
    pub retry_after_max_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Whole-call budget in ms (attempts and sleeps). Default 10000 (DNASTORE_DEADLINE_MS).
    pub deadline: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Distinct `init.route` templates in the route metrics; later ones are 'other'. Default 50 (DNASTORE_METRICS_MAX_ROUTES).
    pub max_routes: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// LKG cache entries; 0 disables. Default 1000 (DNASTORE_LKG_MAX_ENTRIES).
    pub lkg_max_entries: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// LKG cache bytes. Default 64 MiB (DNASTORE_LKG_MAX_BYTES).
    pub lkg_max_bytes: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// Largest body cached. Default 256 KiB (DNASTORE_LKG_MAX_ENTRY_BYTES).
    pub lkg_max_entry_bytes: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// Oldest entry served, ms (also the Redis TTL). Default 300000 (DNASTORE_LKG_MAX_STALE_MS).
    pub lkg_max_stale_ms: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// Threads running every breaker's HTTP I/O, process-wide (the first breaker created sets it). Default 1 (DNASTORE_IO_THREADS).
    pub io_threads: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// One Idempotency-Key per POST/PATCH call, so they can be retried. Default false.
    pub generate_idempotency_keys: Option<bool>,
    /// Identical concurrent GETs share one request. Default true (DNASTORE_COALESCE).
    pub coalesce: Option<bool>,
    /// Calls that pass `init.route` get a circuit of their own (at most maxRoutes, the least recently used closed one evicted); calls without one use the breaker's circuit. Default false (DNASTORE_CIRCUIT_PER_ROUTE).
    pub circuit_per_route: Option<bool>,
    /// A call fired while no other call of its JS thread is pending does its HTTP I/O on that JS thread (less CPU per call); false sends every call to the I/O thread. Default true (DNASTORE_INLINE_IO).
    pub inline_io: Option<bool>,
    /// Header naming the tenant; like Authorization, Cookie and X-Api-Key it always splits the cache and coalescing key. Default 'x-tenant-id' (DNASTORE_LKG_TENANT_HEADER).
    pub tenant_header: Option<String>,
    /// Headers on the no-identity list (accept-language, ...) that should still split the key (DNASTORE_LKG_VARY_HEADERS).
    pub vary_headers: Option<napi::bindgen_prelude::Either<Vec<String>, String>>,
    /// Headers that should not split the key although not on the no-identity list; never an identity header (DNASTORE_LKG_IGNORE_HEADERS).
    pub cache_ignore_headers: Option<napi::bindgen_prelude::Either<Vec<String>, String>>,
    /// HMAC key for cached entries, non-empty (DNASTORE_LKG_SECRET or SPIRAL_EVENT_SECRET).
    pub signing_secret: Option<String>,
    /// Redis for LKG entries shared by replicas: redis://, rediss://, redis+sentinel://host:26379,host2/master, redis+cluster://host1,host2 (DNASTORE_LKG_REDIS_URL).
    pub redis_url: Option<String>,
    /// PEM CA file that verifies the Redis TLS servers instead of the system store; needs a rediss URL (DNASTORE_LKG_REDIS_CA_FILE).
    pub redis_ca_file: Option<String>,
    /// Bound on opening a Redis connection, ms. Default 2000 (DNASTORE_LKG_REDIS_CONNECT_TIMEOUT_MS).
    pub redis_connect_timeout_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Bound on each Redis reply, ms. Default 1000 (DNASTORE_LKG_REDIS_RESPONSE_TIMEOUT_MS).
    pub redis_response_timeout_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Durable writes: 'off' | 'on' (writes with durable: true are queued when they cannot be delivered) | 'all' (every POST/PUT/PATCH/DELETE unless durable: false). Default 'off' (DNASTORE_OUTBOX).
    pub outbox: Option<String>,
    /// Directory of the embedded outbox store (one SQLite file per breaker, mode 0600). Default '.dnastore-outbox' (DNASTORE_OUTBOX_DIR).
    pub outbox_dir: Option<String>,
    /// Redis for a fleet's shared outbox instead of the embedded file (DNASTORE_OUTBOX_REDIS_URL).
    pub outbox_redis_url: Option<String>,
    /// Headers a queued write keeps besides content-type, idempotency-key and the tenant header; authorization only when named (DNASTORE_OUTBOX_HEADERS).
    pub outbox_headers: Option<napi::bindgen_prelude::Either<Vec<String>, String>>,
    /// Writes the outbox holds. Default 100000 (DNASTORE_OUTBOX_MAX_ENTRIES).
    pub outbox_max_entries: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Bytes of queued writes the outbox holds. Default 256 MiB (DNASTORE_OUTBOX_MAX_BYTES).
    pub outbox_max_bytes: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// A queued write older than this is dead-lettered (expired). Default 86400000 (DNASTORE_OUTBOX_MAX_AGE_MS).
    pub outbox_max_age_ms: Option<napi::bindgen_prelude::Either<f64, String>>,
    /// Most queued writes delivered per second. Default 100 (DNASTORE_OUTBOX_RATE).
    pub outbox_rate: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Queued writes delivered at the same time. Default 4 (DNASTORE_OUTBOX_CONCURRENCY).
    pub outbox_concurrency: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Longest wait before a failed delivery is tried again. Default 30000 (DNASTORE_OUTBOX_RETRY_MAX_MS).
    pub outbox_retry_max_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Fleet outbox (outboxRedisUrl): a durable write Redis cannot take is stored in this replica's own file in outboxDir (`<name>.spill.sqlite`) and forwarded to the stream once Redis answers; writes with an ordering key are refused instead. Default true (DNASTORE_OUTBOX_SPILL).
    pub outbox_spill: Option<bool>,
    /// Fleet outbox (outboxRedisUrl): ms a write taken by a replica may go unrenewed (the replica died or hangs) before another replica takes it over. Default 30000 (DNASTORE_OUTBOX_CLAIM_IDLE_MS).
    pub outbox_claim_idle_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// An attempt slower than this (ms) counts as slow in the rolling window, even when it succeeds; 0: off. Default 0 (DNASTORE_CIRCUIT_SLOW_CALL_MS).
    pub slow_call_duration_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Slow-call percentage that opens the circuit past volumeThreshold. Default 50 (DNASTORE_CIRCUIT_SLOW_CALL_RATE).
    pub slow_call_rate_threshold: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Bulkhead: calls in flight to DNAStore per breaker; over it, the fallback with ECONCURRENCY. 0: none. Default 0 (DNASTORE_MAX_CONCURRENT).
    pub max_concurrent: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Calls that may wait (FIFO) for a bulkhead slot. Default 0 (DNASTORE_MAX_QUEUED).
    pub max_queued: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Longest wait for a bulkhead slot, ms. Default 100 (DNASTORE_QUEUE_TIMEOUT_MS).
    pub queue_timeout_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// 'fixed' (maxConcurrent) | 'adaptive' (Gradient2, in [minConcurrency, maxConcurrent]). Default 'fixed' (DNASTORE_CONCURRENCY_LIMIT).
    pub concurrency_limit: Option<String>,
    /// Lower bound of the adaptive limit. Default 2 (DNASTORE_MIN_CONCURRENCY).
    pub min_concurrency: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// 'off' | 'on': every replica of this breaker name shares one circuit through redisUrl (fleet opens, leased half-open trials, new replicas start in the fleet's state). Needs redisUrl; set signingSecret too. Default 'off' (DNASTORE_FLEET_CIRCUIT).
    pub fleet_circuit: Option<String>,
    /// With fleetCircuit 'on': replicas that must have opened on their own evidence within one rollingCountTimeout before the fleet opens. Default 2 (DNASTORE_FLEET_QUORUM).
    pub fleet_quorum: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Longest open period: each failed trial doubles it (jittered) up to this; 0: resetTimeout (no growth). Default 0 (DNASTORE_CIRCUIT_RESET_MAX_MS).
    pub reset_timeout_max: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// A half-open round not decided within this re-opens the circuit; 0: no bound. Default 0 (DNASTORE_CIRCUIT_HALF_OPEN_MAX_WAIT_MS).
    pub half_open_max_wait_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// 'none' | 'open' | 'disabled': a forced state the circuit starts in (as breaker.open() / disable()), until breaker.close() or enable(). Default 'none' (DNASTORE_CIRCUIT_FORCE).
    pub circuit_force: Option<String>,
    /// CA certificate(s) verifying DNAStore: a PEM file path (re-read on rotation) or PEM text (DNASTORE_CA_CERT).
    pub ca_cert: Option<String>,
    /// 'add': caCert is trusted besides the platform roots; 'only': it replaces them. Default 'add' (DNASTORE_CA_MODE).
    pub ca_mode: Option<String>,
    /// mTLS client certificate chain: a PEM file path (re-read on rotation) or PEM text; needs clientKey (DNASTORE_CLIENT_CERT).
    pub client_cert: Option<String>,
    /// mTLS private key: a PEM file path (re-read on rotation; not world-readable) or PEM text; needs clientCert (DNASTORE_CLIENT_KEY).
    pub client_key: Option<String>,
    /// With an IP-address baseUrl: the name DNAStore's certificate is verified against, also sent as SNI and Host (DNASTORE_TLS_SERVER_NAME).
    pub tls_server_name: Option<String>,
    /// Lowest TLS version: '1.2' | '1.3'. Default '1.2' (DNASTORE_TLS_MIN_VERSION).
    pub tls_min_version: Option<String>,
    /// ms between checks of the TLS files for a rotation; 0 never. Default 60000 (DNASTORE_TLS_RELOAD_MS).
    pub tls_reload_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Hedged reads: a GET/HEAD attempt with no answer after this many ms is sent once more (up to hedgeMax extra copies); the first answer wins, the others are cancelled. 'auto': the recent p95 attempt latency, at least 10 ms. 0: off. Hedges draw from the retry budget. Default 0 (DNASTORE_HEDGE_AFTER_MS).
    pub hedge_after_ms: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// Extra copies of one GET/HEAD attempt hedging may send; needs hedgeAfterMs. Default 1 (DNASTORE_HEDGE_MAX).
    pub hedge_max: Option<napi::bindgen_prelude::Either<u32, String>>,
    /// 'off' | 'env' (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) | an http:// proxy URL, a secret. Default 'off' (DNASTORE_PROXY).
    pub proxy: Option<String>,
}
