//! The durable outbox: DNAStore writes that could not be delivered (open circuit, failure
//! after retries, deadline reached, outcome unknown after a timeout or reset) are stored on
//! disk before the caller is answered `queued`, and delivered later by a background loop,
//! through the same breaker, retry policy and budget as live calls, each with the same
//! Idempotency-Key on every attempt (the transactional-outbox pattern).
//!
//! Split by concern: `entry.rs` (what is kept, signed), `schedule.rs` (what may go now),
//! `sqlite.rs` (the embedded store), `delivery.rs` (the loop).

mod delivery;
mod entry;
mod schedule;
mod sqlite;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use delivery::spawn_delivery;
pub use entry::{kept_headers, Write};
pub use schedule::{Meta, Schedule};
pub use sqlite::{DeadRow, SqliteStore, StoreError};

use crate::config::OutboxConfig;
use crate::error::{CallError, Code};
use crate::http::PreparedRequest;
use crate::metrics::BreakerMetrics;
use crate::retry::IDEMPOTENCY_KEY;

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
    Closed,
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

/// Dead-letter reasons (`dnastore_outbox_dead_lettered_total{reason}`).
pub const DEAD_REASONS: [&str; 4] = ["rejected", "expired", "tampered", "unreadable"];

/// Why a write was not queued (`dnastore_outbox_refused_total{reason}`).
pub const REFUSED_REASONS: [&str; 2] = ["full", "store_error"];

pub struct Outbox {
    cfg: OutboxConfig,
    store: Arc<SqliteStore>,
    schedule: Mutex<Schedule>,
    /// Entries and bytes promised to appends still being synced (bounds hold under races).
    reserved: Mutex<(usize, u64)>,
    tenant_header: String,
    secret: Option<String>,
    metrics: Arc<BreakerMetrics>,
    /// Something changed: a write was queued, revived or finished, or the loop should look.
    wake: Notify,
    /// Something finished (for `drain`).
    settled: Notify,
    stop: CancellationToken,
    /// Wall ms before which the loop starts nothing (DNAStore's Retry-After).
    not_before_ms: AtomicU64,
    dead: AtomicU64,
    enqueued: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    /// Counts since the delivery loop last looked (for its run log line).
    run_delivered: AtomicU64,
    run_dead: AtomicU64,
}

impl Outbox {
    /// Opens the breaker's store (creating it if needed) and loads what it holds.
    pub fn open(
        name: &str,
        cfg: OutboxConfig,
        tenant_header: &str,
        secret: Option<String>,
        metrics: Arc<BreakerMetrics>,
    ) -> Result<Arc<Self>, CallError> {
        let opened = SqliteStore::open(&cfg.dir, name).map_err(|e| {
            CallError::new(Code::Config, format!("the outbox cannot be opened: {e}"))
        })?;
        let mut schedule = Schedule::default();
        for m in opened.pending {
            schedule.insert(m);
        }
        let o = Arc::new(Self {
            store: Arc::new(opened.store),
            reserved: Mutex::new((0, 0)),
            tenant_header: tenant_header.to_string(),
            secret,
            wake: Notify::new(),
            settled: Notify::new(),
            stop: CancellationToken::new(),
            not_before_ms: AtomicU64::new(0),
            run_delivered: AtomicU64::new(0),
            run_dead: AtomicU64::new(0),
            dead: AtomicU64::new(opened.dead),
            enqueued: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
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

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Stops the delivery loop (the breaker closed). Queued writes stay in the store.
    pub fn close(&self) {
        self.stop.cancel();
        self.store.close();
        self.wake.notify_waiters();
        self.settled.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Makes `req` ready to be queued: an Idempotency-Key (the caller's, or a new random
    /// one) that every attempt, live or delivered, will carry. Returns the key.
    pub fn prepare(req: &mut PreparedRequest) -> Result<String, CallError> {
        if let Some(k) = req.headers.get(IDEMPOTENCY_KEY) {
            return k.to_str().map(str::to_string).map_err(|_| {
                CallError::invalid(
                    "the Idempotency-Key header of a durable write must be visible ASCII",
                )
            });
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
        if self.is_closed() {
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
        {
            let s = self.schedule.lock();
            let mut r = self.reserved.lock();
            if s.len() + r.0 >= self.cfg.max_entries || s.bytes() + r.1 + size > self.cfg.max_bytes
            {
                if let Some(m) = self.metrics.outbox() {
                    m.refused(REFUSED_REASONS[0]).inc();
                }
                return Err(Refused::Full);
            }
            r.0 += 1;
            r.1 += size;
        }
        let blob = write.encode();
        let mac = self.secret.as_deref().and_then(|s| Write::mac(&blob, s));
        let row = sqlite::NewRow {
            id: write.id.clone(),
            ordering_key: ordering_key.clone(),
            created_at_ms: now_ms,
            size,
            blob,
            mac,
        };
        let store = self.store.clone();
        // On the blocking pool: the sync waits for the disk (and paused-time tests do not
        // advance the clock while it runs).
        let appended = tokio::task::spawn_blocking(move || store.append(row))
            .await
            .unwrap_or_else(|_| Err(StoreError("the outbox append panicked".into())));
        let mut r = self.reserved.lock();
        r.0 -= 1;
        r.1 -= size;
        drop(r);
        let seq = match appended {
            Ok(s) => s,
            Err(e) => {
                if let Some(m) = self.metrics.outbox() {
                    m.refused(REFUSED_REASONS[1]).inc();
                }
                return Err(Refused::Store(e.0));
            }
        };
        self.schedule.lock().insert(Meta {
            seq,
            id: write.id.clone(),
            ordering_key,
            next_at_ms: 0,
            attempts: 0,
            size,
            created_at_ms: now_ms,
        });
        self.enqueued.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.metrics.outbox() {
            m.enqueued.inc();
        }
        self.refresh_gauges(Some(now_ms));
        self.wake.notify_one();
        Ok(Queued {
            id: write.id,
            idempotency_key,
        })
    }

    /// Sets the entries and oldest-age gauges (also at every scrape).
    pub fn refresh_gauges(&self, now_ms: Option<u64>) {
        let Some(m) = self.metrics.outbox() else {
            return;
        };
        let (len, oldest) = {
            let s = self.schedule.lock();
            (s.len(), s.oldest_created_at_ms())
        };
        m.entries.set(len as i64);
        m.dead_letters.set(self.dead.load(Ordering::Relaxed) as i64);
        let age = match (now_ms, oldest) {
            (Some(now), Some(o)) => now.saturating_sub(o) as f64 / 1000.0,
            _ => 0.0,
        };
        m.oldest_age.set(age);
    }

    pub fn stats(&self, now_ms: u64) -> OutboxStats {
        let s = self.schedule.lock();
        OutboxStats {
            entries: s.len() as u64,
            bytes: s.bytes(),
            in_flight: s.in_flight() as u64,
            dead_letters: self.dead.load(Ordering::Relaxed),
            oldest_age: s
                .oldest_created_at_ms()
                .map(|o| Duration::from_millis(now_ms.saturating_sub(o))),
            enqueued: self.enqueued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }

    /// Queued writes, oldest first.
    pub fn list(&self, limit: usize) -> Vec<Listed> {
        let metas: Vec<(Meta, bool)> = {
            let s = self.schedule.lock();
            s.iter()
                .take(limit)
                .map(|m| (m.clone(), s.is_in_flight(m.seq)))
                .collect()
        };
        metas
            .into_iter()
            .filter_map(|(m, delivering)| {
                let (blob, _) = self.store.load(m.seq).ok()??;
                let w = Write::decode(&blob);
                Some(Listed {
                    method: w
                        .as_ref()
                        .map_or_else(String::new, |w| w.method.to_string()),
                    url: w
                        .as_ref()
                        .map_or_else(String::new, |w| crate::http::redact(&w.url)),
                    idempotency_key: w.map(|w| w.idempotency_key).unwrap_or_default(),
                    last_error: self.store.last_error(m.seq),
                    id: m.id,
                    ordering_key: m.ordering_key,
                    attempts: m.attempts,
                    created_at_ms: m.created_at_ms,
                    next_at_ms: m.next_at_ms,
                    delivering,
                })
            })
            .collect()
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .store
            .dead_letters(limit)?
            .into_iter()
            .map(|d| {
                let w = Write::decode(&d.blob);
                DeadLetter {
                    method: w
                        .as_ref()
                        .map_or_else(String::new, |w| w.method.to_string()),
                    url: w
                        .as_ref()
                        .map_or_else(String::new, |w| crate::http::redact(&w.url)),
                    idempotency_key: w.map(|w| w.idempotency_key).unwrap_or_default(),
                    id: d.id,
                    reason: d.reason,
                    status: d.status,
                    answer: d.answer.map(|a| String::from_utf8_lossy(&a).into_owned()),
                    attempts: d.attempts,
                    created_at_ms: d.created_at_ms,
                    died_at_ms: d.died_at_ms,
                }
            })
            .collect())
    }

    /// A dead letter back in the queue (at its end, attempts reset). False if there is none.
    pub async fn retry(self: &Arc<Self>, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let (store, id) = (self.store.clone(), id.to_string());
        let revived = tokio::task::spawn_blocking(move || store.revive(&id, now_ms))
            .await
            .unwrap_or_else(|_| Err(StoreError("the outbox retry panicked".into())))?;
        let Some(mut m) = revived else {
            return Ok(false);
        };
        m.next_at_ms = 0;
        self.schedule.lock().insert(m);
        self.dead.fetch_sub(1, Ordering::Relaxed);
        self.refresh_gauges(Some(now_ms));
        self.wake.notify_one();
        Ok(true)
    }

    /// Removes a queued write (not while it is being delivered) or a dead letter for good.
    pub async fn discard(self: &Arc<Self>, id: &str) -> Result<bool, StoreError> {
        let queued = self.schedule.lock().get(id).map(|m| m.seq);
        if let Some(seq) = queued {
            if self.schedule.lock().is_in_flight(seq) {
                return Err(StoreError(format!("write {id} is being delivered")));
            }
        }
        let (store, owned) = (self.store.clone(), id.to_string());
        let removed = tokio::task::spawn_blocking(move || store.discard(&owned))
            .await
            .unwrap_or_else(|_| Err(StoreError("the outbox discard panicked".into())))?;
        if removed {
            match queued {
                Some(seq) => {
                    self.schedule.lock().remove(seq);
                }
                None => {
                    self.dead.fetch_sub(1, Ordering::Relaxed);
                }
            }
            self.refresh_gauges(None);
            self.settled.notify_waiters();
        }
        Ok(removed)
    }

    pub fn is_empty(&self) -> bool {
        self.schedule.lock().is_empty()
    }
}

#[cfg(test)]
mod tests;
