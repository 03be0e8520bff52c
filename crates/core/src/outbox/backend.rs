//! What differs between the embedded store and the fleet's, behind the methods the API
//! (`mod.rs`) and the delivery loop (`driven.rs`, `breaker/delivery.rs`) call; everything
//! else is shared.
//!
//! The embedded store is the whole truth and the scheduler mirrors it (every queued write
//! is in the schedule, loaded at open). The fleet's queue is in Redis; the schedule holds
//! only the writes this replica took (with their encodings, in `held`), and [`Outbox::tick`]
//! takes more, renews its claims and reads the shared counts, on the loop's turns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::fleet::{Discarded, Failure, Fleet, Held, Snapshot};
use super::spill::Spill;
use super::sqlite::{self, DeadRow, SqliteStore};
use super::{Listed, Meta, Outbox, Refused, StoreError, Write};

pub(super) enum Backend {
    Embedded(Arc<SqliteStore>),
    Fleet(FleetSide),
}

/// The fleet's store and this replica's view of it.
pub(super) struct FleetSide {
    pub fleet: Arc<Fleet>,
    /// The writes this replica holds, by schedule sequence.
    pub held: Mutex<HashMap<u64, Held>>,
    pub snap: Mutex<Snapshot>,
    pub timers: Mutex<Timers>,
    /// Written here just now: look for it at once rather than at the next poll.
    pub fresh: AtomicBool,
    /// Writes Redis could not take, kept in this replica's file until it can (`spill/`);
    /// `None` with `outboxSpill: false`.
    pub spill: Option<Box<Spill>>,
}

/// When the fleet's periodic work is next due (wall ms), and the takeover cursor.
#[derive(Default)]
pub(super) struct Timers {
    pub read: u64,
    pub take_over: u64,
    pub keep: u64,
    pub stats: u64,
    /// When spilled writes are next offered to Redis.
    pub forward: u64,
    pub cursor: String,
}

impl FleetSide {
    pub fn new(fleet: Fleet, spill: Option<Box<Spill>>) -> Self {
        Self {
            spill,
            fleet: Arc::new(fleet),
            held: Mutex::new(HashMap::new()),
            snap: Mutex::new(Snapshot::default()),
            timers: Mutex::new(Timers {
                cursor: "0-0".into(),
                ..Timers::default()
            }),
            fresh: AtomicBool::new(true),
        }
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Runs a store call on the blocking pool: it waits for the disk (and paused-time tests
/// do not advance the clock while it runs).
pub(super) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(StoreError(format!("the outbox {what} panicked"))))
}

impl Outbox {
    /// Stores a write before `queued` is returned: synced to the file, or acknowledged by
    /// Redis. The bounds hold under concurrent appends (reserved here; checked inside the
    /// script for the fleet, where every replica appends).
    pub(super) async fn append(
        &self,
        w: &Write,
        size: u64,
        blob: Vec<u8>,
        mac: Option<[u8; 32]>,
    ) -> Result<(), Refused> {
        let store = match &self.backend {
            Backend::Fleet(f) => {
                let sent = f
                    .fleet
                    .enqueue(
                        &w.id,
                        w.ordering_key.as_deref(),
                        w.created_at_ms,
                        size,
                        &blob,
                        mac.as_ref().map(|m| m.as_slice()),
                        self.cfg.max_entries,
                        self.cfg.max_bytes,
                    )
                    .await;
                return match sent {
                    Ok(Some(_)) => {
                        f.fresh.store(true, Ordering::Release);
                        Ok(())
                    }
                    // The shared bound: Redis answered, the fleet's queue is full.
                    Ok(None) => Err(Refused::Full),
                    Err(e) => self.spill(f, w, size, blob, mac, e).await,
                };
            }
            Backend::Embedded(s) => s.clone(),
        };
        {
            let s = self.schedule.lock();
            let mut r = self.reserved.lock();
            if s.len() + r.0 >= self.cfg.max_entries || s.bytes() + r.1 + size > self.cfg.max_bytes
            {
                return Err(Refused::Full);
            }
            r.0 += 1;
            r.1 += size;
        }
        let row = sqlite::NewRow {
            id: w.id.clone(),
            ordering_key: w.ordering_key.clone(),
            created_at_ms: w.created_at_ms,
            size,
            blob,
            mac,
        };
        let appended = store.append_async(row).await;
        let mut r = self.reserved.lock();
        r.0 -= 1;
        r.1 -= size;
        drop(r);
        let seq = appended.map_err(|e| Refused::Store(e.0))?;
        self.schedule.lock().insert(Meta {
            seq,
            id: w.id.clone(),
            ordering_key: w.ordering_key.clone(),
            next_at_ms: 0,
            attempts: 0,
            size,
            created_at_ms: w.created_at_ms,
        });
        Ok(())
    }

    /// Redis could not take write `w` (`e` says why): stored in this replica's spill file
    /// unless it has an ordering key (`spill/` says why not) or there is no spill.
    async fn spill(
        &self,
        f: &FleetSide,
        w: &Write,
        size: u64,
        blob: Vec<u8>,
        mac: Option<[u8; 32]>,
        e: Failure,
    ) -> Result<(), Refused> {
        let Some(sp) = &f.spill else {
            return Err(Refused::Store(e.message));
        };
        if w.ordering_key.is_some() {
            return Err(Refused::OrderingKey(e.message));
        }
        sp.append(sqlite::NewRow {
            id: w.id.clone(),
            ordering_key: None,
            created_at_ms: w.created_at_ms,
            size,
            blob,
            mac,
        })
        .await?;
        self.metrics.spilled(e.reason).inc();
        Ok(())
    }

    /// (queued writes, oldest created-at, dead letters). The fleet's: the shared queue's
    /// writes (as last read) and dead letters; the oldest write of those and this replica's
    /// spilled ones.
    pub(super) fn counts(&self) -> (u64, Option<u64>, u64) {
        match &self.backend {
            Backend::Embedded(_) => {
                let s = self.schedule.lock();
                let dead = self.dead.load(Ordering::Relaxed);
                (s.len() as u64, s.oldest_created_at_ms(), dead)
            }
            Backend::Fleet(f) => {
                let spilled = f.spill.as_ref().and_then(|sp| sp.counts().2);
                let s = f.snap.lock();
                let oldest = match (s.oldest_created_at_ms, spilled) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (s.entries, oldest, s.dead)
            }
        }
    }

    /// This replica's spilled writes and their bytes (0 without a spill).
    pub(super) fn spilled(&self) -> (u64, u64) {
        match &self.backend {
            Backend::Fleet(FleetSide {
                spill: Some(sp), ..
            }) => {
                let (n, b, _) = sp.counts();
                (n, b)
            }
            _ => (0, 0),
        }
    }

    pub(super) fn bytes(&self) -> u64 {
        match &self.backend {
            Backend::Embedded(_) => self.schedule.lock().bytes(),
            Backend::Fleet(f) => f.snap.lock().bytes,
        }
    }

    pub(super) async fn listed(&self, limit: usize) -> Result<Vec<Listed>, StoreError> {
        let store = match &self.backend {
            Backend::Embedded(s) => s,
            Backend::Fleet(f) => {
                // This replica's spilled writes first (they wait for Redis), then the
                // shared queue's.
                let mut out: Vec<Listed> = match &f.spill {
                    Some(sp) => sp
                        .list(limit)
                        .await
                        .into_iter()
                        .map(|(m, _, (blob, _))| Listed::of_spilled(m, &blob))
                        .collect(),
                    None => vec![],
                };
                let room = limit.saturating_sub(out.len());
                if room > 0 {
                    let rows = f.fleet.list(room).await.map_err(StoreError)?;
                    out.extend(rows.iter().map(Listed::of_fleet));
                }
                return Ok(out);
            }
        };
        let metas: Vec<(Meta, bool)> = {
            let s = self.schedule.lock();
            s.iter()
                .take(limit)
                .map(|m| (m.clone(), s.is_in_flight(m.seq)))
                .collect()
        };
        Ok(metas
            .into_iter()
            .filter_map(|(m, delivering)| {
                let (blob, _) = store.load(m.seq).ok()??;
                let last_error = store.last_error(m.seq);
                Some(Listed::of_embedded(m, &blob, last_error, delivering))
            })
            .collect())
    }

    pub(super) async fn dead_rows(&self, limit: usize) -> Result<Vec<DeadRow>, StoreError> {
        match &self.backend {
            Backend::Embedded(s) => s.dead_letters(limit),
            Backend::Fleet(f) => f.fleet.dead_letters(limit).await.map_err(StoreError),
        }
    }

    /// A dead letter back in the queue; false if there is none with `id`.
    pub(super) async fn revive(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let store = match &self.backend {
            Backend::Fleet(f) => {
                let revived = f.fleet.retry(id, now_ms).await.map_err(StoreError)?;
                if revived {
                    f.fresh.store(true, Ordering::Release);
                    self.refresh_snapshot(f).await;
                }
                return Ok(revived);
            }
            Backend::Embedded(s) => s.clone(),
        };
        let id = id.to_string();
        let Some(mut m) = blocking("retry", move || store.revive(&id, now_ms)).await? else {
            return Ok(false);
        };
        m.next_at_ms = 0;
        self.schedule.lock().insert(m);
        self.dead.fetch_sub(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Removes write `id` for good; `held`: its sequence if this process holds it.
    pub(super) async fn remove(&self, id: &str, held: Option<u64>) -> Result<bool, StoreError> {
        let store = match &self.backend {
            Backend::Fleet(f) => {
                if let Some(removed) = match &f.spill {
                    Some(sp) => sp.discard(id).await?,
                    None => None,
                } {
                    self.refresh_gauges(None);
                    return Ok(removed);
                }
                let removed = match f.fleet.discard(id).await.map_err(StoreError)? {
                    Discarded::Removed => true,
                    Discarded::NotFound => false,
                    Discarded::Busy => {
                        return Err(StoreError(format!("write {id} is being delivered")))
                    }
                };
                if let Some(seq) = held {
                    self.schedule.lock().remove(seq);
                    f.held.lock().remove(&seq);
                }
                self.refresh_snapshot(f).await;
                return Ok(removed);
            }
            Backend::Embedded(s) => s.clone(),
        };
        let owned = id.to_string();
        let removed = blocking("discard", move || store.discard(&owned)).await?;
        if removed {
            match held {
                Some(seq) => {
                    self.schedule.lock().remove(seq);
                }
                None => {
                    self.dead.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        Ok(removed)
    }

    pub(super) async fn refresh_snapshot(&self, f: &FleetSide) {
        if let Ok(s) = f.fleet.snapshot().await {
            *f.snap.lock() = s;
        }
    }

    /// The shared queue's length now (the fleet's is read from Redis), with the writes this
    /// replica spilled and has not forwarded yet.
    pub(super) async fn queued_now(&self) -> u64 {
        if let Backend::Fleet(f) = &self.backend {
            self.refresh_snapshot(f).await;
        }
        self.counts().0 + self.spilled().0
    }
}
