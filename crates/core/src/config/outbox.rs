//! The durable outbox's settings (their integer specs sit in the one table in `mod.rs`; the
//! string ones are declared here beside their parser).

use std::path::PathBuf;
use std::time::Duration;

use super::redis::{RedisOptions, RedisSpec, REDIS_CA_FILE};
use super::resolver::{err, key_of, Resolver};
use super::{spec, BoolSpec, ConfigError, StrSpec};

pub const OUTBOX: StrSpec = StrSpec {
    option: "outbox",
    env: &["DNASTORE_OUTBOX"],
    default: Some("off"),
    secret: false,
    doc: "Durable writes: off; on (writes that pass durable: true are queued when they cannot be delivered); all (every POST/PUT/PATCH/DELETE is durable unless it passes durable: false).",
};
pub const OUTBOX_DIR: StrSpec = StrSpec {
    option: "outboxDir",
    env: &["DNASTORE_OUTBOX_DIR"],
    default: Some(".dnastore-outbox"),
    secret: false,
    doc: "Directory of the embedded store (one SQLite file per breaker, mode 0600), relative to the working directory unless absolute; with outboxRedisUrl, of the replica's spill file (<name>.spill.sqlite).",
};
pub const OUTBOX_REDIS_URL: StrSpec = StrSpec {
    option: "outboxRedisUrl",
    env: &["DNASTORE_OUTBOX_REDIS_URL"],
    default: None,
    secret: true,
    doc: "Redis for a fleet's shared outbox (a Stream with a consumer group) instead of the embedded file; every form redisUrl takes.",
};

pub const OUTBOX_HEADERS: StrSpec = StrSpec {
    option: "outboxHeaders",
    env: &["DNASTORE_OUTBOX_HEADERS"],
    default: None,
    secret: false,
    doc: "Request headers a queued write keeps besides content-type, idempotency-key and the tenant header (authorization only when named here: it is then stored at rest).",
};

pub const OUTBOX_SPILL: BoolSpec = BoolSpec {
    option: "outboxSpill",
    env: "DNASTORE_OUTBOX_SPILL",
    default: true,
    doc: "Fleet outbox (outboxRedisUrl): a durable write Redis cannot take (down, slower than redisResponseTimeoutMs, failing over) is stored in this replica's own file in outboxDir (<name>.spill.sqlite, the embedded store's format) and forwarded to the stream once Redis answers; writes with an ordering key are refused instead. false: every such write is refused (the plain fallback).",
};

/// Which writes are durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxMode {
    Off,
    /// Writes opt in with `durable: true`.
    On,
    /// Every write is durable unless it opts out with `durable: false`.
    All,
}

/// The outbox's settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxConfig {
    pub mode: OutboxMode,
    pub dir: PathBuf,
    /// Validated by [`RedisSpec::parse`]; never echoed.
    pub redis_url: Option<String>,
    /// Timeouts (`redisConnectTimeoutMs`, `redisResponseTimeoutMs`, shared with the LKG's
    /// Redis) and the CA file (`redisCaFile`, when `redis_url` is a TLS URL).
    pub redis: RedisOptions,
    /// With `redis_url`: how long a write taken by a replica may go unrenewed before
    /// another replica takes it over (`outboxClaimIdleMs`).
    pub claim_idle: Duration,
    /// With `redis_url`: a write Redis cannot take is spilled to a file of this replica in
    /// `dir` and forwarded later (`outboxSpill`).
    pub spill: bool,
    /// Lower-case header names kept besides the built-in ones.
    pub headers: Vec<String>,
    pub max_entries: usize,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub rate: u32,
    pub concurrency: u32,
    pub retry_max: Duration,
}

impl Resolver<'_> {
    /// `shared`: the Redis timeouts of the table (the CA file is resolved here, for this URL).
    pub(super) fn outbox(&self, shared: &RedisOptions) -> Result<OutboxConfig, ConfigError> {
        let (mode, src) = self.string(&OUTBOX)?.expect("outbox has a default");
        let mode = match mode.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "" => OutboxMode::Off,
            "on" | "true" | "1" => OutboxMode::On,
            "all" => OutboxMode::All,
            _ => {
                return Err(err(
                    key_of(&OUTBOX, &src),
                    format!("invalid {src}: must be off, on or all"),
                ))
            }
        };
        let (dir, src) = self.string(&OUTBOX_DIR)?.expect("outboxDir has a default");
        if dir.trim().is_empty() {
            return Err(err(
                key_of(&OUTBOX_DIR, &src),
                format!("invalid {src}: must be a directory path"),
            ));
        }
        let mut redis = RedisOptions {
            ca_file: None,
            ..shared.clone()
        };
        let redis_url = match self.string(&OUTBOX_REDIS_URL)? {
            Some((raw, src)) => {
                let spec = RedisSpec::parse(&raw).map_err(|m| {
                    err(
                        key_of(&OUTBOX_REDIS_URL, &src),
                        format!("invalid {src}: {m}"),
                    )
                })?;
                // The one CA option serves both Redis URLs; it only applies to a TLS one (its
                // file is read when a breaker is built, `breaker/files.rs`).
                if let (true, Some((path, _))) = (spec.tls, self.string(&REDIS_CA_FILE)?) {
                    redis.ca_file = Some(PathBuf::from(path));
                }
                Some(raw)
            }
            None => None,
        };
        Ok(OutboxConfig {
            mode,
            dir: PathBuf::from(dir),
            redis_url,
            redis,
            claim_idle: self.ms(&spec::outbox_claim_idle)?,
            spill: self.boolean(&OUTBOX_SPILL)?,
            headers: self.headers(&OUTBOX_HEADERS)?,
            max_entries: self.int(&spec::outbox_max_entries)? as usize,
            max_bytes: self.int(&spec::outbox_max_bytes)?,
            max_age: self.ms(&spec::outbox_max_age)?,
            rate: self.int(&spec::outbox_rate)? as u32,
            concurrency: self.int(&spec::outbox_concurrency)? as u32,
            retry_max: self.ms(&spec::outbox_retry_max)?,
        })
    }
}
