//! The fleet outbox: one queue in Redis shared by every replica of a service
//! (`outboxRedisUrl`), instead of each process's own SQLite file. Any replica delivers any
//! write; a replica that dies leaves nothing stranded.
//!
//! **Structures** (`scripts.rs` lists the keys). The queue is a Redis Stream with one
//! consumer group; each replica (each breaker in each process) is a consumer with a name of
//! its own. A write is XADDed (with its key line and byte count, in one script) before
//! `queued` is returned. Replicas take writes with XREADGROUP; a taken write sits in its
//! consumer's pending list until it is delivered (XACK + XDEL), dead-lettered (moved to the
//! `dead` stream with reason, status and answer) or discarded.
//!
//! **Claims and takeover.** A live replica renews the claim on every write it holds every
//! third of `outboxClaimIdleMs` (XCLAIM to itself, JUSTID; only those still its own). A
//! write nobody renewed for `outboxClaimIdleMs` (its replica died, hangs, or lost Redis)
//! is taken over by another replica with XAUTOCLAIM, together with its attempts and backoff
//! (`state` hash); replicas look for such writes every half claim idle time, at most every
//! [`TAKEOVER_EVERY`]. A replica that shuts down (its breaker closes) hands its writes back:
//! their claims are made to look abandoned, so they are taken over at the next look instead
//! of after the claim idle time (a rolling deploy delays nothing). Consumers that held
//! nothing for ten claim idle times are removed from the group (a fleet that restarts often
//! does not grow the group forever).
//! A replica holds at most a few writes per delivery slot (`HOLD_PER_SLOT`),
//! so a backlog is spread over the fleet rather than hoarded by the first reader; takeovers
//! are not bounded by it (a replica full of writes waiting on a dead replica's must still
//! take that replica's over).
//!
//! **Ordering keys across replicas.** Each key has a list of its queued write ids, oldest
//! first, appended in the same script as the XADD (so list order is stream order). Only
//! the head of a list may be delivered: before every attempt a script checks that the write
//! is still this consumer's and the head of its key, renews the claim and marks it in
//! flight; otherwise it waits (checked again after `WAIT_POLL`) or is dropped (taken over).
//! The head leaves the list only when its write leaves the queue, so two writes of one key
//! are never in flight at once while their holders are alive, whichever replicas hold them.
//! Within a replica the scheduler keeps held writes of a key in stream order too.
//!
//! **Limits.** A replica stalled longer than `outboxClaimIdleMs` in the middle of a
//! delivery (a GC pause, a partition from Redis but not from DNAStore) can have its write
//! taken over and sent again by another replica, possibly after the next write of the same
//! key. Both sends carry the same Idempotency-Key, so a DNAStore that honours it stores the
//! write once and its second arrival changes nothing; without that, order and uniqueness
//! hold only while claims are renewed in time. Choose `outboxClaimIdleMs` well above the
//! longest delivery (`deadline`). One outbox lives in one hash slot (the `{name}` tag), so
//! a Cluster does not spread one breaker's queue over shards. Redis's acknowledgement is as
//! durable as its persistence (docs/outbox.md, the fleet outbox): `appendfsync always` syncs the
//! XADD before it is acknowledged; replicas are not waited for (no WAIT), so a failover to
//! a replica that missed the last writes loses them. The shared counts (stats, gauges) are
//! read at most [`STATS_EVERY`] before. A replica learns of a write queued by another at
//! its next poll ([`POLL`]); its own enqueues wake it at once.

mod admin;
mod forward;
mod link;
mod queue;
mod scripts;

pub use forward::{Forwarded, Spilled};
pub use link::Failure;

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::sqlite::Stored;
use crate::config::{OutboxConfig, RedisSpec};
use crate::redis::{RedisClient, RedisLink};

/// The consumer group every replica of a breaker joins.
const GROUP: &str = "delivery";
/// Writes a replica holds per delivery slot (`outboxConcurrency`) before it reads more.
pub const HOLD_PER_SLOT: usize = 4;
/// How often an idle replica looks for new writes (its own enqueues wake it at once).
pub const POLL: Duration = Duration::from_millis(200);
/// How often a write that waits for an older one of its key (held elsewhere) looks again.
pub const WAIT_POLL: Duration = Duration::from_millis(200);
/// How often a replica looks for writes to take over (at most; every half claim idle time
/// when that is shorter), so writes handed back by a replica that shut down wait no longer.
pub const TAKEOVER_EVERY: Duration = Duration::from_secs(1);
/// How often the shared counts (stats, gauges) are read.
pub const STATS_EVERY: Duration = Duration::from_secs(1);

/// A write this replica holds: its stream id and what delivery needs.
#[derive(Clone, Debug)]
pub struct Held {
    pub sid: String,
    pub stored: Stored,
}

/// What the pre-delivery check says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    Go,
    /// An older write of its ordering key is still queued.
    Wait,
    /// Another replica took it over.
    Lost,
}

/// What `discard` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discarded {
    Removed,
    NotFound,
    /// A live replica is delivering it right now.
    Busy,
}

/// The shared queue's counts, as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: u64,
    pub bytes: u64,
    pub dead: u64,
    pub oldest_created_at_ms: Option<u64>,
}

/// Stream entries as redis-rs reads XRANGE: `(stream id, [(field, value)])`.
pub type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;

/// A queued write as listed (before decoding).
pub struct Row {
    pub sid: String,
    pub id: String,
    pub ordering_key: Option<String>,
    pub created_at_ms: u64,
    pub blob: Vec<u8>,
    /// Its HMAC, when it was signed.
    pub mac: Option<Vec<u8>>,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
    pub delivering: bool,
}

/// Per-write delivery state kept in Redis, so a replica taking a write over continues its
/// backoff: `attempts|next_at_ms|last error`.
fn parse_state(s: &str) -> (u32, u64, Option<String>) {
    let mut it = s.splitn(3, '|');
    let attempts = it.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let next = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let err = it.next().filter(|e| !e.is_empty()).map(str::to_string);
    (attempts, next, err)
}

/// A stream id (`ms-n`) as a scheduler sequence that sorts the same way (n below 2^20,
/// a million writes in one millisecond, which one Redis does not reach).
pub fn seq_of(sid: &str) -> u64 {
    let (ms, n) = sid.split_once('-').unwrap_or((sid, "0"));
    let ms: u64 = ms.parse().unwrap_or(0);
    let n: u64 = n.parse().unwrap_or(0);
    (ms << 20) | n.min((1 << 20) - 1)
}

struct Keys {
    prefix: String,
    q: String,
    dead: String,
    ids: String,
    state: String,
    flight: String,
    bytes: String,
}

impl Keys {
    fn new(name: &str) -> Self {
        // The hash tag keeps every key of one outbox in one Cluster slot (scripts need it).
        let prefix = format!("dnastore:outbox:{{{name}}}");
        let k = |s: &str| format!("{prefix}:{s}");
        Self {
            q: k("q"),
            dead: k("dead"),
            ids: k("ids"),
            state: k("state"),
            flight: k("flight"),
            bytes: k("bytes"),
            prefix,
        }
    }

    /// The marker of a write forwarded from a replica's spill file (`scripts::FORWARD`).
    fn forwarded(&self, id: &str) -> String {
        format!("{}:fwd:{id}", self.prefix)
    }

    /// The ordering key's line; the stream itself stands for "none" (scripts compare).
    /// Hashed: a key is a URL, and key names should be bounded and carry no path.
    fn line(&self, ordering_key: Option<&str>) -> String {
        match ordering_key {
            None | Some("") => self.q.clone(),
            Some(k) => {
                let h = Sha256::digest(k.as_bytes());
                let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("{}:key:{hex}", self.prefix)
            }
        }
    }
}

/// One breaker's handle on the shared queue.
pub struct Fleet {
    keys: Keys,
    consumer: String,
    claim_idle: Duration,
    /// The one connection, reopened after it breaks (`redis/link.rs`).
    link: RedisLink,
}

impl Fleet {
    /// No I/O: the connection opens on first use (a Redis down at startup only makes
    /// enqueues fail, with the plain fallback, until it is back).
    pub fn new(name: &str, cfg: &OutboxConfig) -> Result<Self, String> {
        let url = cfg.redis_url.as_deref().ok_or("no outboxRedisUrl")?;
        let spec = RedisSpec::parse(url).map_err(|m| format!("invalid outboxRedisUrl: {m}"))?;
        let client = RedisClient::new(spec, cfg.redis.clone())
            .map_err(|m| format!("invalid outboxRedisUrl: {m}"))?;
        let random = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            keys: Keys::new(name),
            consumer: format!("{}-{}", std::process::id(), &random[20..]),
            claim_idle: cfg.claim_idle,
            link: RedisLink::new(client, "outbox Redis"),
        })
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn claim_idle(&self) -> Duration {
        self.claim_idle
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_shutdown;
#[cfg(test)]
mod tests_spill;
#[cfg(test)]
mod tests_support;
