//! Group commit: every change (append, delete, reschedule, dead-letter) is queued; whoever
//! finds no commit running becomes the committer and commits everything queued, batch after
//! batch (one transaction, one WAL sync each), until the queue is empty. 50 concurrent
//! writers share a sync instead of paying one each. Async callers await a oneshot and only
//! one blocking-pool thread commits: with a parked thread per writer (the first design),
//! waking 50 threads per commit was 56 % of the enqueue CPU (perf, bench/README.md).
//!
//! A batch that appended also moves the store's record of what it acknowledged
//! (`record.rs`) before anyone in it is answered.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use rusqlite::params;
use tokio::sync::oneshot;

use super::{meta_of, NewRow, SqliteStore, StoreError, META_COLUMNS};
use crate::outbox::schedule::Meta;

pub(super) enum Op {
    Append(NewRow),
    Delete(u64),
    Reschedule {
        seq: u64,
        next_at_ms: u64,
        attempts: u32,
        error: Option<String>,
    },
    Bury {
        seq: u64,
        attempts: u32,
        reason: String,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        at_ms: u64,
    },
    Revive {
        id: String,
        now_ms: u64,
    },
    Discard(String),
}

#[derive(Debug)]
pub(super) enum Done {
    Seq(u64),
    Revived(Option<Meta>),
    Discarded(bool),
    Unit,
}

/// Where an op's result goes: a thread blocked in a sync call, or an awaiting task.
pub(super) enum Reply {
    Sync(mpsc::SyncSender<Result<Done, StoreError>>),
    Async(oneshot::Sender<Result<Done, StoreError>>),
}

impl Reply {
    fn send(self, r: Result<Done, StoreError>) {
        match self {
            Reply::Sync(tx) => {
                let _ = tx.send(r);
            }
            Reply::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

#[derive(Default)]
pub(super) struct Group {
    queue: Vec<(Op, Reply)>,
    committing: bool,
    /// Shared with the checkpointer, which only looks when it moved.
    pub(super) commits: Arc<std::sync::atomic::AtomicU64>,
}

impl SqliteStore {
    /// Queues `op`; true when the caller must become the committer (none is running).
    fn push(&self, op: Op, reply: Reply) -> bool {
        let mut g = self.group.lock();
        g.queue.push((op, reply));
        !std::mem::replace(&mut g.committing, true)
    }

    /// Commits batch after batch until nothing is queued, then stops being the committer
    /// (under the lock, so a push in between either joins a batch or starts a committer).
    fn commit_all(&self) {
        loop {
            let batch = {
                let mut g = self.group.lock();
                if g.queue.is_empty() {
                    g.committing = false;
                    return;
                }
                g.commits.fetch_add(1, Ordering::SeqCst);
                std::mem::take(&mut g.queue)
            };
            let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
            let results = self.commit(&ops);
            // The record moves before anyone in the batch hears `queued`: it never says
            // less than what was acknowledged (record.rs says why a failure here does not
            // fail the batch).
            let appended = ops
                .iter()
                .zip(&results)
                .filter_map(|(op, r)| match (op, r) {
                    (Op::Append(_), Ok(Done::Seq(s))) => Some(*s),
                    _ => None,
                })
                .max();
            if let Some(through) = appended {
                self.record.advance(through);
            }
            self.checkpoints.committed();
            for (reply, r) in replies.into_iter().zip(results) {
                reply.send(r);
            }
        }
    }

    /// Runs `op` in the next group commit; returns once it is on disk (blocking).
    pub(super) fn run(&self, op: Op) -> Result<Done, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.push(op, Reply::Sync(tx)) {
            self.commit_all();
        }
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError("the outbox commit was lost".into())))
    }

    /// Runs `op` in the next group commit; resolves once it is on disk. Commits on the
    /// runtime's blocking pool (and paused-time tests do not advance while it runs).
    pub(super) async fn run_async(self: &Arc<Self>, op: Op) -> Result<Done, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.push(op, Reply::Async(tx)) {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.commit_all());
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError("the outbox commit was lost".into())))
    }

    /// One transaction for the whole batch; if it fails, every op in it failed.
    fn commit(&self, ops: &[Op]) -> Vec<Result<Done, StoreError>> {
        let attempt = self.with_conn("write failed", |conn| {
            let tx = conn.transaction()?;
            let mut out = Vec::with_capacity(ops.len());
            for op in ops {
                out.push(apply(&tx, op)?);
            }
            tx.commit()?;
            Ok(out)
        });
        match attempt {
            Ok(done) => done.into_iter().map(Ok).collect(),
            Err(e) => ops.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// The highest sequence number the outbox table ever gave (AUTOINCREMENT keeps it in
    /// `sqlite_sequence`; deleting rows never lowers it): what the record is compared with.
    pub(super) fn last_seq(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
        match conn.query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |r| r.get::<_, i64>(0),
        ) {
            Ok(s) => Ok(s.max(0) as u64),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(0),
            // A file where nothing was ever appended has no sqlite_sequence table yet.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => Ok(0),
            Err(e) => Err(e),
        }
    }
}

fn apply(tx: &rusqlite::Transaction<'_>, op: &Op) -> rusqlite::Result<Done> {
    Ok(match op {
        Op::Append(r) => {
            tx.prepare_cached(
                "INSERT INTO outbox (id, ordering_key, created_at_ms, next_at_ms, size, write, mac) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)",
            )?
            .execute(params![
                r.id,
                r.ordering_key,
                r.created_at_ms as i64,
                r.size as i64,
                r.blob,
                r.mac.as_ref().map(|m| m.as_slice()),
            ])?;
            Done::Seq(tx.last_insert_rowid() as u64)
        }
        Op::Delete(seq) => {
            tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
                .execute([*seq as i64])?;
            Done::Unit
        }
        Op::Reschedule {
            seq,
            next_at_ms,
            attempts,
            error,
        } => {
            tx.prepare_cached(
                "UPDATE outbox SET next_at_ms = ?2, attempts = ?3, last_error = ?4 WHERE seq = ?1",
            )?
            .execute(params![
                *seq as i64,
                *next_at_ms as i64,
                *attempts as i64,
                error
            ])?;
            Done::Unit
        }
        Op::Bury {
            seq,
            attempts,
            reason,
            status,
            answer,
            at_ms,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dead (seq, id, ordering_key, created_at_ms, attempts, died_at_ms, reason, status, answer, size, write, mac)
                 SELECT seq, id, ordering_key, created_at_ms, ?6, ?2, ?3, ?4, ?5, size, write, mac FROM outbox WHERE seq = ?1",
            )?
            .execute(params![
                *seq as i64,
                *at_ms as i64,
                reason,
                status.map(i64::from),
                answer,
                *attempts as i64,
            ])?;
            tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
                .execute([*seq as i64])?;
            Done::Unit
        }
        Op::Revive { id, now_ms } => {
            let n = tx
                .prepare_cached(
                    "INSERT INTO outbox (id, ordering_key, created_at_ms, next_at_ms, attempts, size, write, mac)
                     SELECT id, ordering_key, ?2, ?2, 0, size, write, mac FROM dead WHERE id = ?1",
                )?
                .execute(params![id, *now_ms as i64])?;
            if n == 0 {
                return Ok(Done::Revived(None));
            }
            let seq = tx.last_insert_rowid();
            tx.prepare_cached("DELETE FROM dead WHERE id = ?1")?
                .execute([id])?;
            let m = tx.query_row(
                &format!("SELECT {META_COLUMNS} FROM outbox WHERE seq = ?1"),
                [seq],
                meta_of,
            )?;
            Done::Revived(Some(m))
        }
        Op::Discard(id) => {
            let a = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])?;
            let b = tx
                .prepare_cached("DELETE FROM dead WHERE id = ?1")?
                .execute([id])?;
            Done::Discarded(a + b > 0)
        }
    })
}
