//! Every setting, its option name, its environment variable, its default and its accepted
//! range, in one table, validated in one place ([`Config::resolve`]).
//!
//! Inputs arrive untyped ([`RawValue`]) from JS or from the environment, so a string where
//! a number belongs, a NaN or an out-of-range value becomes a [`ConfigError`] that names
//! the option or variable and the accepted range, never a panic or a silent default.
//!
//! A foundation: plain data and its validation, no I/O (it imports only `error` and
//! `text`). The files some settings name are read when a breaker is built, by the feature
//! that uses them (`breaker/files.rs`); [`Origins`] keeps how their errors name them.
//!
//! Where things are: `input.rs` (raw values, spec types, the error), `resolver.rs` (how one
//! setting is read from options or the environment), this file (the integer table, the
//! boolean and general string settings, [`Config`] and [`Config::resolve`]), and one file
//! per group beside its parser: `lkg.rs`, `redis.rs` (Redis URLs, the CA option),
//! `outbox.rs`, `fleet.rs`, `limit.rs`, `tls.rs`.
//!
//! # Adding an option
//!
//! An integer: one line in `int_specs!` below. A string or list: its `StrSpec` beside its
//! group's parser, and its name in `STR_SPECS` or `LIST_SPECS`. A boolean: its `BoolSpec`
//! and `BOOL_SPECS`. Then its field in the settings struct it belongs to, read in
//! [`Config::resolve`] (or the group's resolver), and its row in the options docs and
//! `.env.example` (`tests.rs` checks both document every setting).

use std::time::Duration;

use url::Url;

use crate::error::CallError;

mod circuit_force;
mod effective;
mod fleet;
mod hedge;
mod input;
mod limit;
mod lkg;
mod outbox;
mod redis;
mod resolver;
mod tls;

pub use circuit_force::CircuitForce;
pub use effective::{Setting, Shown, Source, REDACTED};
pub use fleet::FleetConfig;
pub use hedge::{HedgeConfig, HedgeDelay};
pub use input::{BoolSpec, ConfigError, IntSpec, RawOptions, RawValue, StrSpec};
pub use limit::{LimitConfig, LimitKind, SlowCallConfig};
pub use lkg::{LkgConfig, IDENTITY_HEADERS};
pub use outbox::{OutboxConfig, OutboxMode};
pub use redis::{Mode, Node, RedisOptions, RedisSpec};
use resolver::{err, key_of, Resolver};
pub use resolver::{Origin, Origins};
pub use tls::{
    base_ip, PemSource, ProxyMode, TlsConfig, TlsInput, TlsVersion, PROXY_ENV_VARS,
    TLS_INSECURE_ENV,
};

macro_rules! int_specs {
    ($($id:ident: $opt:literal, $env:literal, $def:expr, $min:expr, $max:expr, $unit:literal, $doc:literal;)*) => {
        #[allow(non_upper_case_globals)]
        pub mod spec {
            #[allow(unused_imports)]
            use super::{IntSpec, KIB, MIB};
            $(pub const $id: IntSpec = IntSpec { option: $opt, env: $env, default: $def, min: $min, max: $max, unit: $unit, doc: $doc };)*
        }
        /// Every integer setting, in the order of docs/options.md.
        pub const INT_SPECS: &[IntSpec] = &[$(spec::$id),*];
    };
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

int_specs! {
    timeout: "timeout", "DNASTORE_TIMEOUT_MS", 3000, 1, 600_000, "ms",
        "Per-attempt timeout, headers and body included; the attempt's connection is dropped when it fires.";
    error_threshold: "errorThresholdPercentage", "DNASTORE_CIRCUIT_ERROR_THRESHOLD", 50, 1, 100, "%",
        "Failure percentage in the rolling window that opens the circuit (once volumeThreshold calls were seen).";
    reset_timeout: "resetTimeout", "DNASTORE_CIRCUIT_RESET_MS", 10_000, 1, 3_600_000, "ms",
        "Time the circuit stays open before the next call is let through as a half-open trial.";
    rolling_timeout: "rollingCountTimeout", "DNASTORE_CIRCUIT_ROLLING_MS", 10_000, 10, 3_600_000, "ms",
        "Length of the rolling window for the failure percentage and stats().";
    rolling_buckets: "rollingCountBuckets", "DNASTORE_CIRCUIT_ROLLING_BUCKETS", 10, 1, 1000, "buckets",
        "Buckets in the rolling window; rollingCountTimeout must be a multiple of it.";
    volume_threshold: "volumeThreshold", "DNASTORE_CIRCUIT_VOLUME_THRESHOLD", 20, 0, 1_000_000, "calls",
        "Calls the window must hold before the failure percentage can open the circuit.";
    max_failures: "maxFailures", "DNASTORE_CIRCUIT_MAX_FAILURES", 5, 0, 1_000_000, "failures",
        "Consecutive failures that open the circuit whatever the percentage (0 disables).";
    reset_timeout_max: "resetTimeoutMax", "DNASTORE_CIRCUIT_RESET_MAX_MS", 0, 0, 86_400_000, "ms",
        "Longest open period: each failed half-open trial in a row doubles the open period (jittered) up to it; a close starts again from resetTimeout (0: resetTimeout, no growth; else >= resetTimeout).";
    half_open_max_wait: "halfOpenMaxWaitMs", "DNASTORE_CIRCUIT_HALF_OPEN_MAX_WAIT_MS", 0, 0, 3_600_000, "ms",
        "A half-open round of trials not decided within this re-opens the circuit (checked when a call asks to be let through; 0: no bound).";
    half_open_calls: "halfOpenMaxCalls", "DNASTORE_CIRCUIT_HALF_OPEN_CALLS", 3, 1, 1000, "calls",
        "Trial calls let through while half-open; all must succeed to close. Other calls get the fallback.";
    max_response_bytes: "maxResponseBytes", "DNASTORE_MAX_RESPONSE_BYTES", 10 * MIB, 1, 1024 * MIB, "bytes",
        "Largest response body read; a larger one fails with ETOOLARGE.";
    max_attempts: "maxAttempts", "DNASTORE_RETRY_MAX_ATTEMPTS", 3, 1, 10, "attempts",
        "Total attempts per call, the first included (1 disables retries).";
    retry_base: "retryBaseMs", "DNASTORE_RETRY_BASE_MS", 100, 1, 60_000, "ms",
        "Smallest backoff delay between attempts.";
    retry_max: "retryMaxMs", "DNASTORE_RETRY_MAX_MS", 2000, 1, 300_000, "ms",
        "Largest backoff delay between attempts (must be >= retryBaseMs).";
    retry_budget_percent: "retryBudgetPercent", "DNASTORE_RETRY_BUDGET_PERCENT", 20, 0, 1000, "%",
        "Retries may add at most this percentage of the calls of the last 10 s (plus retryMinPerSec).";
    retry_min_per_sec: "retryMinPerSec", "DNASTORE_RETRY_MIN_PER_SEC", 10, 0, 100_000, "retries/s",
        "Retries always allowed per second on top of the percentage, so a quiet service can still retry.";
    retry_after_max: "retryAfterMaxMs", "DNASTORE_RETRY_AFTER_MAX_MS", 5000, 0, 300_000, "ms",
        "Cap on a Retry-After wait (429/503); the call's deadline caps it too.";
    deadline: "deadline", "DNASTORE_DEADLINE_MS", 10_000, 1, 3_600_000, "ms",
        "Overall budget of one fire(): every attempt and backoff sleep together.";
    max_routes: "maxRoutes", "DNASTORE_METRICS_MAX_ROUTES", 50, 0, 1000, "routes",
        "Distinct `init.route` templates labelled in the route metrics; later ones count as route=\"other\".";
    lkg_max_entries: "lkgMaxEntries", "DNASTORE_LKG_MAX_ENTRIES", 1000, 0, 10_000_000, "entries",
        "Last-known-good cache size in entries (0 disables the cache).";
    lkg_max_bytes: "lkgMaxBytes", "DNASTORE_LKG_MAX_BYTES", 64 * MIB, 0, 16 * 1024 * MIB, "bytes",
        "Last-known-good cache size in bytes of stored bodies.";
    lkg_max_entry_bytes: "lkgMaxEntryBytes", "DNASTORE_LKG_MAX_ENTRY_BYTES", 256 * KIB, 1, 1024 * MIB, "bytes",
        "Largest body stored in the cache; larger responses are served but not cached.";
    lkg_max_stale: "lkgMaxStaleMs", "DNASTORE_LKG_MAX_STALE_MS", 300_000, 1, 7 * 24 * 3_600_000, "ms",
        "Oldest cached entry served as a fallback (also the Redis TTL).";
    io_threads: "ioThreads", "DNASTORE_IO_THREADS", 1, 1, 64, "threads",
        "Threads running every breaker's HTTP I/O in the process (1: one dedicated thread; more: a work-stealing pool). Process-wide: the first breaker created sets it.";
    redis_connect_timeout: "redisConnectTimeoutMs", "DNASTORE_LKG_REDIS_CONNECT_TIMEOUT_MS", 2000, 1, 60_000, "ms",
        "Bound on opening a Redis connection: TCP, TLS, AUTH, the Sentinel lookup or the Cluster slot map.";
    redis_response_timeout: "redisResponseTimeoutMs", "DNASTORE_LKG_REDIS_RESPONSE_TIMEOUT_MS", 1000, 1, 60_000, "ms",
        "Bound on each Redis reply; slower means the connection is stuck: it is dropped and reopened. Fallback reads wait at most min(250 ms, the call's remaining deadline) anyway.";
    outbox_max_entries: "outboxMaxEntries", "DNASTORE_OUTBOX_MAX_ENTRIES", 100_000, 1, 10_000_000, "writes",
        "Writes the outbox holds; when it is full a write that cannot be delivered gets the plain 503 fallback, never a silent drop.";
    outbox_max_bytes: "outboxMaxBytes", "DNASTORE_OUTBOX_MAX_BYTES", 256 * MIB, 1024, 64 * 1024 * MIB, "bytes",
        "Bytes of queued writes (URL, kept headers, body) the outbox holds.";
    outbox_max_age: "outboxMaxAgeMs", "DNASTORE_OUTBOX_MAX_AGE_MS", 86_400_000, 1000, 30 * 86_400_000, "ms",
        "A queued write not delivered within this is moved to the dead letters (reason expired).";
    outbox_rate: "outboxRate", "DNASTORE_OUTBOX_RATE", 100, 1, 100_000, "writes/s",
        "Most queued writes delivered per second, so a recovering DNAStore is not stampeded.";
    outbox_concurrency: "outboxConcurrency", "DNASTORE_OUTBOX_CONCURRENCY", 4, 1, 256, "writes",
        "Queued writes delivered at the same time.";
    outbox_retry_max: "outboxRetryMaxMs", "DNASTORE_OUTBOX_RETRY_MAX_MS", 30_000, 1, 3_600_000, "ms",
        "Longest wait before a queued write whose delivery failed is tried again (jittered backoff from retryBaseMs).";
    // Slow calls, the bulkhead and the adaptive limit (issue 15; parsed in `limit.rs`).
    slow_call_duration: "slowCallDurationMs", "DNASTORE_CIRCUIT_SLOW_CALL_MS", 0, 0, 600_000, "ms",
        "A call slower than this counts as slow in the rolling window, even when it succeeds (0: off).";
    slow_call_rate: "slowCallRateThreshold", "DNASTORE_CIRCUIT_SLOW_CALL_RATE", 50, 1, 100, "%",
        "Slow-call percentage in the rolling window that opens the circuit (once volumeThreshold calls were seen); a slow half-open trial reopens it.";
    max_concurrent: "maxConcurrent", "DNASTORE_MAX_CONCURRENT", 0, 0, 100_000, "calls",
        "Calls in flight to DNAStore per breaker (0: no bulkhead). Over it a call gets the fallback at once with ECONCURRENCY; with concurrencyLimit adaptive, the upper bound of the limit.";
    max_queued: "maxQueued", "DNASTORE_MAX_QUEUED", 0, 0, 100_000, "calls",
        "Calls that may wait (FIFO) for a bulkhead slot; beyond it they get the ECONCURRENCY fallback at once.";
    queue_timeout: "queueTimeoutMs", "DNASTORE_QUEUE_TIMEOUT_MS", 100, 1, 600_000, "ms",
        "Longest wait for a bulkhead slot (the call's deadline and AbortSignal bound it too); then the ECONCURRENCY fallback.";
    min_concurrency: "minConcurrency", "DNASTORE_MIN_CONCURRENCY", 2, 1, 100_000, "calls",
        "Lower bound of the adaptive concurrency limit (must be <= maxConcurrent).";
    outbox_claim_idle: "outboxClaimIdleMs", "DNASTORE_OUTBOX_CLAIM_IDLE_MS", 30_000, 100, 3_600_000, "ms",
        "Fleet outbox (outboxRedisUrl): a write a replica took and has not finished for this long (the replica died or hangs) is taken over by another (XAUTOCLAIM); live replicas renew theirs every third of it.";
    // The fleet circuit (config/fleet.rs).
    fleet_quorum: "fleetQuorum", "DNASTORE_FLEET_QUORUM", 2, 1, 1000, "replicas",
        "With fleetCircuit on: replicas that must have opened on their own evidence within one rollingCountTimeout before the whole fleet opens (a lone replica opens alone, as without the fleet).";
    // Upstream TLS (config/tls.rs).
    tls_reload: "tlsReloadMs", "DNASTORE_TLS_RELOAD_MS", 60_000, 0, 86_400_000, "ms",
        "How often caCert, clientCert and clientKey files are checked for a rotation (0: never); new connections use the new material, calls in flight keep theirs.";
    // Hedged reads (config/hedge.rs; hedgeAfterMs is declared there).
    hedge_max: "hedgeMax", "DNASTORE_HEDGE_MAX", 1, 1, 10, "copies",
        "Extra copies of one GET/HEAD attempt hedging may send (each hedgeAfterMs after the previous); needs hedgeAfterMs.";
}

/// Boolean settings.
pub const GENERATE_IDEMPOTENCY_KEYS: BoolSpec = BoolSpec {
    option: "generateIdempotencyKeys",
    env: "DNASTORE_RETRY_GENERATE_IDEMPOTENCY_KEYS",
    default: false,
    doc: "Generate one Idempotency-Key per POST/PATCH call (sent on every attempt) so those calls can be retried.",
};
pub const COALESCE: BoolSpec = BoolSpec {
    option: "coalesce",
    env: "DNASTORE_COALESCE",
    default: true,
    doc: "Identical concurrent GETs (same cache key) share one upstream request.",
};
pub const INLINE_IO: BoolSpec = BoolSpec {
    option: "inlineIo",
    env: "DNASTORE_INLINE_IO",
    default: true,
    doc: "A call fired while no other call of its JS thread is pending does its HTTP I/O on that JS thread (no hand-over to the I/O thread and back: less CPU per call); false sends every call to the I/O thread.",
};
pub const CIRCUIT_PER_ROUTE: BoolSpec = BoolSpec {
    option: "circuitPerRoute",
    env: "DNASTORE_CIRCUIT_PER_ROUTE",
    default: false,
    doc: "Calls that pass `init.route` get a circuit of their own (at most maxRoutes of them, the least recently used closed one evicted); calls without a route use the breaker's circuit.",
};
pub const BOOL_SPECS: &[BoolSpec] = &[
    GENERATE_IDEMPOTENCY_KEYS,
    COALESCE,
    CIRCUIT_PER_ROUTE,
    INLINE_IO,
    outbox::OUTBOX_SPILL,
];

/// String settings.
pub const NAME: StrSpec = StrSpec {
    option: "name",
    env: &["DNASTORE_BREAKER_NAME"],
    default: Some("dnastore"),
    secret: false,
    doc: "Breaker name: the `name` label of every metric and the registry key (1-64 of A-Z a-z 0-9 _ . : -).",
};
pub const BASE_URL: StrSpec = StrSpec {
    option: "baseUrl",
    env: &["DNASTORE_URL"],
    default: None,
    secret: false,
    doc: "Base URL that relative fire() paths resolve against (http or https).",
};
pub const STR_SPECS: &[StrSpec] = &[
    NAME,
    BASE_URL,
    lkg::TENANT_HEADER,
    lkg::SIGNING_SECRET,
    lkg::REDIS_URL,
    redis::REDIS_CA_FILE,
    outbox::OUTBOX,
    outbox::OUTBOX_DIR,
    outbox::OUTBOX_REDIS_URL,
    fleet::FLEET_CIRCUIT,
    circuit_force::CIRCUIT_FORCE,
    limit::CONCURRENCY_LIMIT,
    tls::CA_CERT,
    tls::CA_MODE,
    tls::CLIENT_CERT,
    tls::CLIENT_KEY,
    tls::TLS_SERVER_NAME,
    tls::TLS_MIN_VERSION,
    tls::PROXY,
    hedge::HEDGE_AFTER,
];

/// Header-name list settings: a comma-separated string (or, from JS, an array of names).
pub const LIST_SPECS: &[StrSpec] = &[
    lkg::VARY_HEADERS,
    lkg::IGNORE_HEADERS,
    outbox::OUTBOX_HEADERS,
];

/// Retry settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
    pub budget_percent: u32,
    pub min_per_sec: u32,
    pub retry_after_max: Duration,
    pub generate_idempotency_keys: bool,
}

/// A breaker's configuration, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub name: String,
    pub base_url: Option<Url>,
    pub timeout: Duration,
    pub error_threshold_percentage: u32,
    pub reset_timeout: Duration,
    /// The longest open period (`resetTimeoutMax`); `reset_timeout` when off.
    pub reset_timeout_max: Duration,
    /// `halfOpenMaxWaitMs`; `None`: no bound.
    pub half_open_max_wait: Option<Duration>,
    pub rolling_count_timeout: Duration,
    pub rolling_count_buckets: u32,
    pub volume_threshold: u32,
    pub max_failures: u32,
    pub half_open_max_calls: u32,
    pub max_response_bytes: u64,
    pub deadline: Duration,
    pub max_routes: u32,
    /// Process-wide (the binding's I/O runtime); the first breaker's value wins.
    pub io_threads: u32,
    pub coalesce: bool,
    /// `circuitPerRoute`: a circuit per `init.route` (`circuit/per_route.rs`).
    pub circuit_per_route: bool,
    /// `inlineIo`: lone calls run on the JS thread's own runtime (the binding's choice).
    pub inline_io: bool,
    pub retry: RetryConfig,
    pub lkg: LkgConfig,
    pub outbox: OutboxConfig,
    pub slow_calls: SlowCallConfig,
    /// The bulkhead; `None` without `maxConcurrent`.
    pub limit: Option<LimitConfig>,
    /// The upstream connection's TLS material and proxy.
    pub tls: TlsConfig,
    /// Where the settings naming files came from (for the errors reading them).
    pub origins: Origins,
    /// The circuit shared by every replica through `redisUrl`; `None` with `fleetCircuit` off.
    pub fleet: Option<FleetConfig>,
    /// Hedged reads; `None` with `hedgeAfterMs` 0.
    pub hedge: Option<HedgeConfig>,
    /// A forced state the circuit starts in (`circuitForce`); `None`: automatic.
    pub circuit_force: Option<CircuitForce>,
}

/// Every accepted option name.
pub fn option_names() -> Vec<&'static str> {
    INT_SPECS
        .iter()
        .map(|s| s.option)
        .chain(BOOL_SPECS.iter().map(|s| s.option))
        .chain(STR_SPECS.iter().map(|s| s.option))
        .chain(LIST_SPECS.iter().map(|s| s.option))
        .collect()
}

/// Validates a per-call millisecond override (`init.timeout`, `init.deadline`) against the
/// same range as its breaker-level option.
pub fn call_ms(field: &str, spec: &IntSpec, value: f64) -> Result<Duration, CallError> {
    if value.is_finite()
        && value.fract() == 0.0
        && value >= spec.min as f64
        && value <= spec.max as f64
    {
        Ok(Duration::from_millis(value as u64))
    } else {
        Err(CallError::invalid(format!(
            "invalid {field}: must be an integer from {} to {} ({}), got {value}",
            spec.min, spec.max, spec.unit
        )))
    }
}

/// Parses an upstream base URL; the error never echoes credentials.
pub fn parse_base_url(raw: &str, source: &str, key: &str) -> Result<Url, ConfigError> {
    let bad = |why: &str| {
        err(
            key,
            format!("invalid {source}: {why}; must be an absolute http:// or https:// URL"),
        )
    };
    let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(&format!("scheme {:?} is not supported", url.scheme())));
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    Ok(url)
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

impl Config {
    /// The defaults, with no options and an empty environment.
    pub fn defaults() -> Config {
        Self::resolve(&RawOptions::new(), &|_| None).expect("defaults are valid")
    }

    /// Validates options (which win) and environment variables (which fill the gaps).
    pub fn resolve(
        opts: &RawOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let known = option_names();
        if let Some((k, _)) = opts
            .entries
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            return Err(err(
                k,
                format!(
                    "unknown option `{k}`; accepted options: {}",
                    known.join(", ")
                ),
            ));
        }
        let r = Resolver { opts, env };

        let (name, name_src) = r.string(&NAME)?.expect("name has a default");
        if !valid_name(&name) {
            return Err(err(
                key_of(&NAME, &name_src),
                format!("invalid {name_src}: the breaker name must be 1-64 characters of A-Z a-z 0-9 _ . : -"),
            ));
        }
        let base_url = match r.string(&BASE_URL)? {
            Some((raw, src)) => {
                let key = if src.starts_with("option") {
                    BASE_URL.option
                } else {
                    BASE_URL.env[0]
                };
                Some(parse_base_url(&raw, &src, key)?)
            }
            None => None,
        };

        let rolling_count_timeout = r.ms(&spec::rolling_timeout)?;
        let rolling_count_buckets = r.int(&spec::rolling_buckets)? as u32;
        if !(rolling_count_timeout.as_millis() as u64).is_multiple_of(rolling_count_buckets as u64)
        {
            let given = r.int_label(&spec::rolling_timeout);
            return Err(err(
                given,
                format!(
                    "invalid {given} ({} ms): must be a multiple of {} ({})",
                    rolling_count_timeout.as_millis(),
                    r.int_label(&spec::rolling_buckets),
                    rolling_count_buckets
                ),
            ));
        }
        let retry_base = r.ms(&spec::retry_base)?;
        let retry_max = r.ms(&spec::retry_max)?;
        if retry_max < retry_base {
            let given = r.int_label(&spec::retry_max);
            return Err(err(
                given,
                format!(
                    "invalid {given} ({} ms): must be >= {} ({} ms)",
                    retry_max.as_millis(),
                    r.int_label(&spec::retry_base),
                    retry_base.as_millis()
                ),
            ));
        }
        let keys = r.cache_keys()?;
        let (redis_url, redis) = r.lkg_redis()?;
        let fleet = r.fleet(redis_url.is_some())?;
        let outbox = r.outbox(&redis)?;
        let (slow_calls, limit) = r.limits()?;
        let (tls, [ca_cert, client_cert, client_key]) = r.tls(base_url.as_ref())?;
        let redis_ca_file = r
            .string(&redis::REDIS_CA_FILE)?
            .map(|(_, src)| Origin::of(&redis::REDIS_CA_FILE, &src));
        let hedge = r.hedge()?;
        let circuit_force = r.circuit_force()?;
        let reset_timeout = r.ms(&spec::reset_timeout)?;
        let reset_timeout_max = match r.ms(&spec::reset_timeout_max)? {
            Duration::ZERO => reset_timeout,
            m if m < reset_timeout => {
                let given = r.int_label(&spec::reset_timeout_max);
                return Err(err(
                    given,
                    format!(
                        "invalid {given} ({} ms): must be 0 (off) or >= {} ({} ms)",
                        m.as_millis(),
                        r.int_label(&spec::reset_timeout),
                        reset_timeout.as_millis()
                    ),
                ));
            }
            m => m,
        };
        let half_open_max_wait = Some(r.ms(&spec::half_open_max_wait)?).filter(|d| !d.is_zero());
        Ok(Config {
            hedge,
            circuit_force,
            origins: Origins {
                ca_cert,
                client_cert,
                client_key,
                redis_ca_file,
            },
            slow_calls,
            limit,
            name,
            base_url,
            timeout: r.ms(&spec::timeout)?,
            error_threshold_percentage: r.int(&spec::error_threshold)? as u32,
            reset_timeout,
            reset_timeout_max,
            half_open_max_wait,
            rolling_count_timeout,
            rolling_count_buckets,
            volume_threshold: r.int(&spec::volume_threshold)? as u32,
            max_failures: r.int(&spec::max_failures)? as u32,
            half_open_max_calls: r.int(&spec::half_open_calls)? as u32,
            max_response_bytes: r.int(&spec::max_response_bytes)?,
            deadline: r.ms(&spec::deadline)?,
            max_routes: r.int(&spec::max_routes)? as u32,
            io_threads: r.int(&spec::io_threads)? as u32,
            coalesce: r.boolean(&COALESCE)?,
            circuit_per_route: r.boolean(&CIRCUIT_PER_ROUTE)?,
            inline_io: r.boolean(&INLINE_IO)?,
            retry: RetryConfig {
                max_attempts: r.int(&spec::max_attempts)? as u32,
                base: retry_base,
                max: retry_max,
                budget_percent: r.int(&spec::retry_budget_percent)? as u32,
                min_per_sec: r.int(&spec::retry_min_per_sec)? as u32,
                retry_after_max: r.ms(&spec::retry_after_max)?,
                generate_idempotency_keys: r.boolean(&GENERATE_IDEMPOTENCY_KEYS)?,
            },
            lkg: LkgConfig {
                max_entries: r.int(&spec::lkg_max_entries)? as usize,
                max_bytes: r.int(&spec::lkg_max_bytes)?,
                max_entry_bytes: r.int(&spec::lkg_max_entry_bytes)?,
                max_stale: r.ms(&spec::lkg_max_stale)?,
                tenant_header: keys.tenant_header,
                vary_headers: keys.vary_headers,
                ignore_headers: keys.ignore_headers,
                signing_secret: keys.signing_secret,
                redis_url,
                redis,
            },
            outbox,
            tls,
            fleet,
        })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_env_keys;
