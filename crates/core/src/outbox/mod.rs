//! The durable outbox: DNAStore writes that could not be delivered (open circuit, failure
//! after retries, deadline reached, outcome unknown after a timeout or reset) are stored on
//! disk before the caller is answered `queued`, and delivered later by a background loop,
//! through the same breaker, retry policy and budget as live calls, each with the same
//! Idempotency-Key on every attempt (the transactional-outbox pattern).
//!
//! Two stores behind one API and one delivery loop: each process's own SQLite file (the
//! default), or, with `outboxRedisUrl`, a Redis Stream shared by a fleet of replicas, where
//! a write Redis cannot take is spilled to a file of the replica and forwarded later.
//!
//! Split by concern: `entry.rs` (what is kept, signed), `schedule.rs` (what may go now),
//! `sqlite/` (the embedded store), `fleet/` (the Redis Streams store), `spill/` (the
//! fleet's writes Redis could not take, in the embedded store's format), `backend.rs`
//! (what differs between the two, for the API), `turn.rs` (and for the loop),
//! `driven.rs` (what the delivery loop asks of it: the loop itself lives with the breaker
//! that drives it, `breaker/delivery.rs`), `metrics.rs` (its series), `shutdown.rs`
//! (closing it without losing the durable writes in flight).

pub mod admin;
mod backend;
mod driven;
mod entry;
pub mod fleet;
mod listing;
mod metrics;
mod schedule;
mod shutdown;
mod spill;
mod sqlite;
mod turn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use backend::{Backend, FleetSide};
pub use driven::Done;
pub use entry::{kept_headers, Write};
pub use metrics::{OutboxMetrics, RefusedReason, SpillReason};
pub use schedule::{Meta, Schedule};
pub use shutdown::{Hold, SHUTDOWN_QUEUE_TIMEOUT};
pub use sqlite::{DeadRow, SqliteStore, StoreError};

use crate::config::OutboxConfig;
use crate::error::{CallError, Code};
use crate::request::{PreparedRequest, IDEMPOTENCY_KEY};

/// Which methods may be queued: writes. A read needs its answer now; a queued GET would
/// answer nobody. POST creates, PUT and PATCH change, DELETE removes: each can be applied
/// later, once, with an Idempotency-Key.
pub fn method_qualifies(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The ordering key when the caller gives none: the URL for PUT/PATCH/DELETE (changes to
/// one resource must land in order), none for POST (independent creations may overlap).
pub fn default_ordering_key(req: &PreparedRequest) -> Option<String> {
    (req.method != Method::POST).then(|| req.url.as_str().to_string())
}

/// What a queued write's caller is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub idempotency_key: String,
}

/// Why a write was not queued (the caller then gets the plain fallback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `outboxMaxEntries` or `outboxMaxBytes` reached.
    Full,
    /// The store failed (disk full, I/O error); the message names the file.
    Store(String),
    /// Fleet: Redis could not take a write with an ordering key (the message says why),
    /// which is never spilled (`spill/` says why).
    OrderingKey(String),
    Closed,
}

impl Refused {
    /// Its `dnastore_outbox_refused_total` reason.
    pub fn reason(&self) -> RefusedReason {
        match self {
            Refused::Full => RefusedReason::Full,
            Refused::Store(_) | Refused::Closed => RefusedReason::StoreError,
            Refused::OrderingKey(_) => RefusedReason::OrderingKey,
        }
    }
}

/// Counts for `outbox.stats()`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxStats {
    pub entries: u64,
    pub bytes: u64,
    pub in_flight: u64,
    pub dead_letters: u64,
    pub oldest_age: Option<Duration>,
    pub enqueued: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Fleet: writes this replica spilled (Redis could not take them) and has not yet
    /// forwarded to the stream, and their bytes (0 otherwise).
    pub spilled: u64,
    pub spilled_bytes: u64,
    /// Fleet: spilled writes forwarded to the stream since start.
    pub forwarded: u64,
}

/// A queued write as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub id: String,
    pub method: String,
    /// Without credentials, query or fragment.
    pub url: String,
    pub idempotency_key: String,
    pub ordering_key: Option<String>,
    pub attempts: u32,
    pub created_at_ms: u64,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
    pub delivering: bool,
    /// In this replica's spill file, waiting for Redis (fleet only).
    pub spilled: bool,
}

/// A dead letter as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub id: String,
    pub method: String,
    pub url: String,
    pub idempotency_key: String,
    pub reason: String,
    pub status: Option<u16>,
    pub answer: Option<String>,
    pub attempts: u32,
    pub created_at_ms: u64,
    pub died_at_ms: u64,
}

/// Longest a fleet durable write waits to learn whether an older write of its ordering
/// key is queued (one LLEN; a Redis that slow could not take the write anyway).
pub const ORDER_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

pub struct Outbox {
    cfg: OutboxConfig,
    backend: Backend,
    /// The writes this process may deliver: every queued write of the embedded store; the
    /// writes this replica holds of the fleet's.
    schedule: Mutex<Schedule>,
    /// Entries and bytes promised to appends still being synced (bounds hold under races).
    reserved: Mutex<(usize, u64)>,
    tenant_header: String,
    secret: Option<String>,
    /// Found at open, for the startup log (queued writes the secret does not verify).
    warnings: Vec<String>,
    metrics: OutboxMetrics,
    /// Something changed: a write was queued, revived or finished, or the loop should look.
    wake: Notify,
    /// Something finished (for `drain`).
    settled: Notify,
    stop: CancellationToken,
    /// Durable calls in flight, which keep the store open after `close` (`shutdown.rs`).
    pending: Mutex<shutdown::Pending>,
    /// Wall ms before which the loop starts nothing (DNAStore's Retry-After).
    not_before_ms: AtomicU64,
    dead: AtomicU64,
    enqueued: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    forwarded: AtomicU64,
    /// Counts since the delivery loop last looked (for its run log line).
    run_delivered: AtomicU64,
    run_dead: AtomicU64,
    /// Passes of the delivery loop (a test holds it to not spinning).
    turns: AtomicU64,
}

impl Outbox {
    /// Opens the breaker's store (creating it if needed) and loads what it holds. The
    /// fleet's opens no connection yet (`fleet/`).
    pub fn open(
        name: &str,
        cfg: OutboxConfig,
        tenant_header: &str,
        secret: Option<String>,
        metrics: OutboxMetrics,
    ) -> Result<Arc<Self>, CallError> {
        let mut schedule = Schedule::default();
        let mut dead = 0;
        let mut warnings = vec![];
        let backend = match &cfg.redis_url {
            Some(_) => {
                let f =
                    fleet::Fleet::new(name, &cfg).map_err(|e| CallError::new(Code::Config, e))?;
                let spill = if cfg.spill {
                    let opened = spill::Spill::open(&cfg.dir, name, cfg.max_entries, cfg.max_bytes)
                        .map_err(|e| {
                            CallError::new(
                                Code::Config,
                                format!(
                                    "the outbox's spill file cannot be opened: {e} (outboxSpill: \
                                     false runs the fleet outbox without it)"
                                ),
                            )
                        })?;
                    let store = opened.spill.store();
                    if let Some(w) = unverified(store, &opened.pending, secret.as_deref()) {
                        warnings.push(w);
                    }
                    if !opened.pending.is_empty() {
                        warnings.push(format!(
                            "{} writes spilled while Redis could not take them are in {}: they \
                             are forwarded to the shared queue once Redis answers",
                            opened.pending.len(),
                            store.path().display()
                        ));
                    }
                    Some(Box::new(opened.spill))
                } else {
                    None
                };
                Backend::Fleet(FleetSide::new(f, spill))
            }
            None => {
                let opened = SqliteStore::open(&cfg.dir, name).map_err(|e| {
                    CallError::new(Code::Config, format!("the outbox cannot be opened: {e}"))
                })?;
                if let Some(w) = unverified(&opened.store, &opened.pending, secret.as_deref()) {
                    warnings.push(w);
                }
                for m in opened.pending {
                    schedule.insert(m);
                }
                dead = opened.dead;
                Backend::Embedded(Arc::new(opened.store))
            }
        };
        let o = Arc::new(Self {
            backend,
            reserved: Mutex::new((0, 0)),
            tenant_header: tenant_header.to_string(),
            secret,
            warnings,
            wake: Notify::new(),
            settled: Notify::new(),
            stop: CancellationToken::new(),
            pending: Mutex::default(),
            not_before_ms: AtomicU64::new(0),
            run_delivered: AtomicU64::new(0),
            run_dead: AtomicU64::new(0),
            turns: AtomicU64::new(0),
            dead: AtomicU64::new(dead),
            enqueued: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            schedule: Mutex::new(schedule),
            metrics,
            cfg,
        });
        o.refresh_gauges(None);
        Ok(o)
    }

    pub fn config(&self) -> &OutboxConfig {
        &self.cfg
    }

    /// What the startup log should say about the queue it opened.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The embedded store (`None` for the fleet's).
    pub fn store(&self) -> Option<&SqliteStore> {
        match &self.backend {
            Backend::Embedded(s) => Some(s),
            Backend::Fleet(_) => None,
        }
    }

    /// The fleet's store (`None` for the embedded one).
    pub fn fleet(&self) -> Option<&fleet::Fleet> {
        match &self.backend {
            Backend::Fleet(f) => Some(&f.fleet),
            Backend::Embedded(_) => None,
        }
    }

    /// Makes `req` ready to be queued: an Idempotency-Key (the caller's, or a new random
    /// one) that every attempt, live or delivered, will carry. Returns the key.
    pub fn prepare(req: &mut PreparedRequest) -> Result<String, CallError> {
        if let Some(k) = req.headers.get(IDEMPOTENCY_KEY) {
            // Empty or blank, it would name no write: the upstream could not tell a
            // replay from a new write, and every such write would share one key.
            return match k.to_str() {
                Ok(s) if !s.trim().is_empty() => Ok(s.to_string()),
                Ok(_) => Err(CallError::invalid(
                    "the Idempotency-Key header of a durable write must not be empty",
                )),
                Err(_) => Err(CallError::invalid(
                    "the Idempotency-Key header of a durable write must be visible ASCII",
                )),
            };
        }
        let key = crate::rng::idempotency_key()?;
        let v = HeaderValue::from_str(&key).map_err(|_| CallError::invalid("idempotency key"))?;
        req.headers.insert(IDEMPOTENCY_KEY, v);
        Ok(key)
    }

    /// Stores the write before it returns (synced to disk); the delivery loop takes it
    /// from there. `now_ms` is wall-clock time.
    pub async fn enqueue(
        self: &Arc<Self>,
        req: &PreparedRequest,
        ordering_key: Option<String>,
        now_ms: u64,
    ) -> Result<Queued, Refused> {
        // Not `is_closed`: after the breaker closed, its durable calls in flight still
        // queue their writes (`shutdown.rs`).
        if self.store_closed() {
            return Err(Refused::Closed);
        }
        let idempotency_key = req
            .headers
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let write = Write {
            id: uuid::Uuid::now_v7().to_string(),
            method: req.method.clone(),
            url: req.url.clone(),
            headers: kept_headers(&req.headers, &self.tenant_header, &self.cfg.headers),
            body: req.body.clone().unwrap_or_default(),
            idempotency_key: idempotency_key.clone(),
            ordering_key: ordering_key.clone(),
            created_at_ms: now_ms,
        };
        let size = write.size();
        let blob = write.encode();
        let mac = self.secret.as_deref().and_then(|s| Write::mac(&blob, s));
        let appended = self.append(&write, size, blob, mac).await;
        if let Err(r) = &appended {
            self.metrics.refused(r.reason()).inc();
        }
        appended?;
        self.enqueued.fetch_add(1, Ordering::Relaxed);
        self.metrics.enqueued.inc();
        self.refresh_gauges(Some(now_ms));
        self.wake.notify_one();
        Ok(Queued {
            id: write.id,
            idempotency_key,
        })
    }

    /// Sets the entries and oldest-age gauges (also at every scrape). The fleet's are the
    /// shared queue's, as last read (every replica reports the same: aggregate with max).
    pub fn refresh_gauges(&self, now_ms: Option<u64>) {
        let m = &self.metrics;
        let (len, oldest, dead) = self.counts();
        m.entries.set(len as i64);
        m.dead_letters.set(dead as i64);
        m.spilled_entries.set(self.spilled().0 as i64);
        let age = match (now_ms, oldest) {
            (Some(now), Some(o)) => now.saturating_sub(o) as f64 / 1000.0,
            _ => 0.0,
        };
        m.oldest_age.set(age);
    }

    /// For the fleet: `entries`, `bytes` and `dead_letters` are the shared queue's (read at
    /// most [`fleet::STATS_EVERY`] ago), `oldest_age` theirs and this replica's spilled
    /// writes'; `in_flight` and `spilled` are this replica's.
    pub fn stats(&self, now_ms: u64) -> OutboxStats {
        let (entries, oldest, dead_letters) = self.counts();
        let (spilled, spilled_bytes) = self.spilled();
        OutboxStats {
            entries,
            bytes: self.bytes(),
            in_flight: self.schedule.lock().in_flight() as u64,
            dead_letters,
            oldest_age: oldest.map(|o| Duration::from_millis(now_ms.saturating_sub(o))),
            enqueued: self.enqueued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            spilled,
            spilled_bytes,
            forwarded: self.forwarded.load(Ordering::Relaxed),
        }
    }

    /// Queued writes, oldest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<Listed>, StoreError> {
        self.listed(limit).await
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .dead_rows(limit)
            .await?
            .iter()
            .map(DeadLetter::of)
            .collect())
    }

    /// A dead letter back at the end of the queue, as a new write: its age counts from now
    /// (an expired one would expire again at once), its attempts from zero.
    pub async fn retry(self: &Arc<Self>, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let revived = self.revive(id, now_ms).await?;
        if revived {
            self.refresh_gauges(Some(now_ms));
            self.wake.notify_one();
        }
        Ok(revived)
    }

    /// Removes a queued write (not while it is being delivered) or a dead letter for good.
    pub async fn discard(self: &Arc<Self>, id: &str) -> Result<bool, StoreError> {
        // Out of the schedule first, in one step with the in-flight check: the delivery loop
        // can no longer claim it while the store removes it (it did, and delivered a write
        // discard() had answered true for).
        let taken = {
            let mut s = self.schedule.lock();
            match s.get(id).map(|m| m.seq) {
                Some(seq) if s.is_in_flight(seq) => {
                    return Err(StoreError(format!("write {id} is being delivered")))
                }
                Some(seq) => s.remove(seq),
                None => None,
            }
        };
        let removed = match self.remove(id, taken.as_ref().map(|m| m.seq)).await {
            Ok(r) => r,
            Err(e) => {
                // Still in the store: back in line.
                if let Some(m) = taken {
                    self.schedule.lock().insert(m);
                }
                return Err(e);
            }
        };
        if removed || taken.is_some() {
            self.refresh_gauges(None);
            self.settled.notify_waiters();
        }
        Ok(removed)
    }

    /// True while an older write of ordering key `k` is queued: a newer write of the key
    /// must go behind it, not overtake it live. The fleet asks Redis, for at most
    /// [`ORDER_CHECK_TIMEOUT`]; false if Redis cannot say (it could not take the write
    /// then either, so the live attempt is the write's only chance).
    pub async fn has_queued(&self, k: &str) -> bool {
        if self.schedule.lock().has_key(k) {
            return true;
        }
        match &self.backend {
            Backend::Fleet(f) => tokio::time::timeout(ORDER_CHECK_TIMEOUT, f.fleet.has_queued(k))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false),
            Backend::Embedded(_) => false,
        }
    }

    /// No write left to deliver: for the fleet, in the shared queue as last read, held here
    /// or spilled here.
    pub fn is_empty(&self) -> bool {
        self.schedule.lock().is_empty() && self.counts().0 == 0 && self.spilled().0 == 0
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_shutdown;

/// How many of the oldest queued writes are checked at open: enough to tell a rotated
/// secret (every one fails) from one tampered entry, cheap for any queue length.
const VERIFY_AT_OPEN: usize = 100;

/// A warning when queued writes found at open do not verify under `secret`: most often the
/// secret was rotated with writes still queued, and each would be dead-lettered as
/// `tampered` when its turn comes. Said once at startup, so the operator can restore the
/// old secret (and `retry()` those already dead-lettered) rather than learn it from them.
fn unverified(
    store: &SqliteStore,
    pending: &[schedule::Meta],
    secret: Option<&str>,
) -> Option<String> {
    secret?;
    let checked: Vec<Option<sqlite::Stored>> = pending
        .iter()
        .take(VERIFY_AT_OPEN)
        .map(|m| store.load(m.seq).ok().flatten())
        .collect();
    let failed = listing::count_unverified(checked.iter().flatten(), secret);
    (failed > 0).then(|| {
        format!(
            "{failed} of the {} oldest queued writes in {} do not verify with signingSecret: \
             if it was rotated with writes still queued, they will be dead-lettered as tampered; \
             restart with the previous secret to deliver them (and retry() those already \
             dead-lettered)",
            checked.len(),
            store.path().display()
        )
    })
}
