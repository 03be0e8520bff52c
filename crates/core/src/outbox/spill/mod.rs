//! The fleet outbox's spill: durable writes Redis could not take (down, slower than
//! `redisResponseTimeoutMs`, failing over) are stored in a file of this replica, and
//! forwarded into the shared stream once Redis answers again (`forward.rs`).
//!
//! **The file** is the embedded store's (`sqlite/`): the same format, mode 0600 in a 0700
//! directory, WAL with `synchronous=FULL` and group commit, the `-ack` record and its check
//! at open. It is named `<name>.spill.sqlite` in `outboxDir`, never `<name>.outbox.sqlite`
//! (an embedded outbox of the same breaker name keeps its own file): a spill file's name
//! ends in `.spill.sqlite` or `.spill.<n>.sqlite`, an embedded store's in `.outbox.sqlite`.
//! Several processes may share a directory (replicas on one host, a Node cluster): each
//! takes the first of [`SLOTS`] files it can lock (`<name>.spill.sqlite`, then
//! `<name>.spill.1.sqlite`, ...), so a process that restarts, or another one, takes over the
//! file a dead process left, with whatever it holds, and forwards it.
//!
//! **Which writes.** A write without an ordering key. A keyed write (PUT/PATCH/DELETE by
//! default) is refused instead (`RefusedReason::OrderingKey`): its key's older writes may be
//! queued in Redis or be sent live by other replicas meanwhile, and no replica can see
//! those while Redis is out of reach, so a spilled keyed write could land after a newer
//! write of its key and overwrite it.
//!
//! **Bounds**: `outboxMaxEntries` and `outboxMaxBytes` bound the file on their own (full: the
//! plain fallback, `RefusedReason::Full`); forwarding respects the shared queue's bound, so
//! a spilled write waits in the file while the stream is full.
//!
//! **Exactly once.** A forwarded write leaves the file only after Redis acknowledged it,
//! and Redis keeps a marker of each forwarded id for `outboxMaxAgeMs`: a process that dies
//! between the acknowledgement and the local delete forwards the write again after its
//! restart, and the script adds nothing. A write whose live enqueue timed out (it may have
//! reached Redis after all) is spilled too; its forward finds it queued by id and adds
//! nothing, unless that copy was already delivered, in which case the write is sent a
//! second time with its Idempotency-Key (docs/outbox.md says when that can happen).

mod forward;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use super::backend::blocking;
use super::schedule::{Meta, Schedule};
use super::sqlite::{NewRow, SqliteStore, Stored};
use super::{Refused, StoreError};

/// Spill files a directory holds per breaker name: one per process using it at once.
pub const SLOTS: usize = 64;

/// The file stem of spill slot `slot` (`<stem>.sqlite`, `<stem>.lock`).
pub fn stem(name: &str, slot: usize) -> String {
    match slot {
        0 => format!("{name}.spill"),
        n => format!("{name}.spill.{n}"),
    }
}

/// One replica's spill file and what it holds.
pub(super) struct Spill {
    store: Arc<SqliteStore>,
    /// The spilled writes, oldest first; "in flight" marks those being forwarded now.
    rows: Mutex<Schedule>,
    /// Entries and bytes promised to appends still being synced (bounds hold under races).
    reserved: Mutex<(usize, u64)>,
    max_entries: usize,
    max_bytes: u64,
}

/// What a spill held at open.
pub(super) struct OpenedSpill {
    pub spill: Spill,
    pub pending: Vec<Meta>,
}

impl Spill {
    /// Opens (or creates) the first spill file of `name` under `dir` that no other process
    /// holds.
    pub fn open(
        dir: &Path,
        name: &str,
        max_entries: usize,
        max_bytes: u64,
    ) -> Result<OpenedSpill, StoreError> {
        for slot in 0..SLOTS {
            let Some(o) = SqliteStore::open_stem(dir, &stem(name, slot), true)? else {
                continue;
            };
            let mut rows = Schedule::default();
            for m in &o.pending {
                rows.insert(m.clone());
            }
            return Ok(OpenedSpill {
                spill: Spill {
                    store: Arc::new(o.store),
                    rows: Mutex::new(rows),
                    reserved: Mutex::new((0, 0)),
                    max_entries,
                    max_bytes,
                },
                pending: o.pending,
            });
        }
        Err(StoreError(format!(
            "outbox spill {}: all {SLOTS} spill files of breaker {name:?} are held by other \
             processes",
            dir.join(stem(name, 0)).display()
        )))
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Stores `row`, synced, before it returns.
    pub async fn append(&self, row: NewRow) -> Result<(), Refused> {
        let size = row.size;
        {
            let s = self.rows.lock();
            let mut r = self.reserved.lock();
            if s.len() + r.0 >= self.max_entries || s.bytes() + r.1 + size > self.max_bytes {
                return Err(Refused::Full);
            }
            r.0 += 1;
            r.1 += size;
        }
        let (id, ordering_key, created_at_ms) =
            (row.id.clone(), row.ordering_key.clone(), row.created_at_ms);
        let appended = self.store.append_async(row).await;
        let mut r = self.reserved.lock();
        r.0 -= 1;
        r.1 -= size;
        drop(r);
        let seq = appended.map_err(|e| Refused::Store(e.0))?;
        self.rows.lock().insert(Meta {
            seq,
            id,
            ordering_key,
            next_at_ms: 0,
            attempts: 0,
            size,
            created_at_ms,
        });
        Ok(())
    }

    /// The oldest spilled writes not being forwarded, at most `rows` of them and about
    /// `bytes` (at least one), marked as being forwarded.
    pub fn claim(&self, rows: usize, bytes: u64) -> Vec<Meta> {
        let mut s = self.rows.lock();
        let mut out: Vec<Meta> = Vec::new();
        let mut size = 0;
        while out.len() < rows && size < bytes {
            let Some(m) = s.claim(u64::MAX, 1).pop() else {
                break;
            };
            size += m.size;
            out.push(m);
        }
        out
    }

    /// Claimed writes' encodings and MACs, in order, read in one go (`None` if one cannot
    /// be read now).
    pub async fn stored(&self, ms: &[Meta]) -> Option<Vec<Stored>> {
        let (store, seqs) = (
            self.store.clone(),
            ms.iter().map(|m| m.seq).collect::<Vec<_>>(),
        );
        let rows: Vec<Option<Stored>> = blocking("spill read", move || {
            seqs.into_iter().map(|seq| store.load(seq)).collect()
        })
        .await
        .ok()?;
        rows.into_iter().collect()
    }

    /// Redis acknowledged these: out of the file (one group commit), then out of the
    /// index. One whose delete failed stays, and is forwarded again (Redis adds nothing).
    pub async fn forwarded(&self, ms: &[Meta]) {
        let deletes = ms.iter().map(|m| self.store.delete_async(m.seq));
        let done = futures_util::future::join_all(deletes).await;
        let mut s = self.rows.lock();
        for (m, d) in ms.iter().zip(done) {
            match d {
                Ok(()) => {
                    s.remove(m.seq);
                }
                Err(_) => s.release(m.seq),
            }
        }
    }

    /// Claimed but not forwarded: back in line, at its place.
    pub fn put_back(&self, ms: &[Meta]) {
        let mut s = self.rows.lock();
        for m in ms {
            s.release(m.seq);
        }
    }

    /// Removes spilled write `id` for good: `None` when it is not here, an error while it
    /// is being forwarded (it may be in Redis already: ask again there).
    pub async fn discard(&self, id: &str) -> Result<Option<bool>, StoreError> {
        let taken = {
            let mut s = self.rows.lock();
            match s.get(id).map(|m| m.seq) {
                None => return Ok(None),
                Some(seq) if s.is_in_flight(seq) => {
                    return Err(StoreError(format!(
                        "write {id} is being forwarded to Redis"
                    )))
                }
                Some(seq) => s.remove(seq),
            }
        };
        let (store, owned) = (self.store.clone(), id.to_string());
        match blocking("spill discard", move || store.discard(&owned)).await {
            Ok(removed) => Ok(Some(removed)),
            Err(e) => {
                if let Some(m) = taken {
                    self.rows.lock().insert(m);
                }
                Err(e)
            }
        }
    }

    /// Spilled writes, oldest first, with their encodings (for listing).
    pub async fn list(&self, limit: usize) -> Vec<(Meta, bool, Stored)> {
        let metas: Vec<(Meta, bool)> = {
            let s = self.rows.lock();
            s.iter()
                .take(limit)
                .map(|m| (m.clone(), s.is_in_flight(m.seq)))
                .collect()
        };
        let store = self.store.clone();
        blocking("spill list", move || {
            Ok(metas
                .into_iter()
                .filter_map(|(m, busy)| {
                    let stored = store.load(m.seq).ok()??;
                    Some((m, busy, stored))
                })
                .collect())
        })
        .await
        .unwrap_or_default()
    }

    /// (writes, bytes, oldest created-at).
    pub fn counts(&self) -> (u64, u64, Option<u64>) {
        let s = self.rows.lock();
        (s.len() as u64, s.bytes(), s.oldest_created_at_ms())
    }

    pub fn is_empty(&self) -> bool {
        self.rows.lock().is_empty()
    }

    /// Closes the file and releases its lock (another process, or the next breaker of this
    /// name, may take it over).
    pub fn close(&self) {
        self.store.close();
    }
}
