//! The embedded store: one SQLite file per breaker (`<dir>/<name>.outbox.sqlite`), in WAL
//! mode with `synchronous=FULL`, so a write is on disk before `queued` is returned and
//! survives a crash or a power loss.
//!
//! Why SQLite over redb (measured by `outbox-store-choice`, bench/README.md): both lost no
//! acknowledged write over SIGKILLs at random points; SQLite gave more writes/s behind the
//! same group commit, its file format has been stable since 2004 (a queue written by one
//! release must be readable by the next), and an operator can open the file with `sqlite3`.
//!
//! Group commit: every change (append, delete, reschedule, dead-letter) is queued; whoever
//! finds no commit running becomes the committer and commits everything queued, batch after
//! batch (one transaction, one WAL sync each), until the queue is empty. 50 concurrent
//! writers share a sync instead of paying one each. Async callers await a oneshot and only
//! one blocking-pool thread commits: with a parked thread per writer (the first design),
//! waking 50 threads per commit was 56 % of the enqueue CPU (perf, bench/README.md).
//!
//! Checkpoints (copying the WAL back into the file) run on a thread of their own with its
//! own connection, once a second when something was committed (PASSIVE: they never block a
//! commit). Run inside a commit, as SQLite does by default, they were the enqueue latency's
//! tail: p99 8 ms against 2.9 ms without them at 50 writers; every 100 ms they still cost
//! 5 ms at p99 (their fsync of the file competes with the WAL's), every second 2.3-3.0 ms.
//! A large auto-checkpoint threshold remains as a bound on the WAL's size, should the
//! background checkpoints ever fall behind.
//!
//! One process per file, for the life of the process (`<name>.outbox.lock`, held with an
//! exclusive `flock`): a second process gets a clear error instead of delivering the same
//! writes. A corrupt or unreadable file is an error naming the path; it is never emptied.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::{mpsc, Arc};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use super::schedule::Meta;

/// A failed store operation; the message names the file, never an entry's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One write as it is appended.
pub struct NewRow {
    pub id: String,
    pub ordering_key: Option<String>,
    pub created_at_ms: u64,
    pub size: u64,
    pub blob: Vec<u8>,
    pub mac: Option<[u8; 32]>,
}

/// A queued write's encoding and its MAC (when signed).
pub type Stored = (Vec<u8>, Option<Vec<u8>>);

/// A dead letter as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadRow {
    pub id: String,
    pub reason: String,
    pub status: Option<u16>,
    pub answer: Option<Vec<u8>>,
    pub attempts: u32,
    pub created_at_ms: u64,
    pub died_at_ms: u64,
    pub blob: Vec<u8>,
}

enum Op {
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
enum Done {
    Seq(u64),
    Revived(Option<Meta>),
    Discarded(bool),
    Unit,
}

/// Where an op's result goes: a thread blocked in a sync call, or an awaiting task.
enum Reply {
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
struct Group {
    queue: Vec<(Op, Reply)>,
    committing: bool,
    /// Shared with the checkpointer, which only looks when it moved.
    commits: Arc<std::sync::atomic::AtomicU64>,
}

pub struct SqliteStore {
    path: PathBuf,
    /// `None` once closed: the file and its lock are released.
    conn: Mutex<Option<Connection>>,
    group: Mutex<Group>,
    /// The process's claim on the file (an exclusive flock), released on close.
    lock: Mutex<Option<fs::File>>,
    checkpoints: Checkpointer,
}

/// WAL pages after which a commit checkpoints by itself (64 MiB at SQLite's 4 KiB pages):
/// only if the background checkpoints fell that far behind.
const WAL_CAP_PAGES: u32 = 16_384;
/// How often the checkpointer looks, when commits happened since it last did.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);

/// The background checkpoint thread and what stops it.
struct Checkpointer {
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Checkpoints `path` PASSIVE-ly whenever `commits` moved since the last look.
    fn start(path: &Path, commits: Arc<std::sync::atomic::AtomicU64>) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(path, "cannot open the checkpoint connection", e))?;
        let stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("dnastore-outbox-ckpt".into())
            .spawn(move || {
                let mut seen = 0;
                loop {
                    {
                        let mut stopped = s.0.lock();
                        if !*stopped {
                            s.1.wait_for(&mut stopped, CHECKPOINT_EVERY);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    let now = commits.load(std::sync::atomic::Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        // Busy or failing: the next look tries again; the writer's cap bounds the WAL.
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
            })
            .map_err(|e| err(path, "cannot start the checkpoint thread", e))?;
        Ok(Self {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn stop(&self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// What the file held at open.
pub struct Opened {
    pub store: SqliteStore,
    pub pending: Vec<Meta>,
    pub dead: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  ordering_key TEXT,
  created_at_ms INTEGER NOT NULL,
  next_at_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  size INTEGER NOT NULL,
  write BLOB NOT NULL,
  mac BLOB
);
CREATE TABLE IF NOT EXISTS dead (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  ordering_key TEXT,
  created_at_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  died_at_ms INTEGER NOT NULL,
  reason TEXT NOT NULL,
  status INTEGER,
  answer BLOB,
  size INTEGER NOT NULL,
  write BLOB NOT NULL,
  mac BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '1');
";

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("outbox store {}: {what}: {e}", path.display()))
}

impl SqliteStore {
    /// Opens (or creates, mode 0600 in a 0700 directory) the breaker's file under `dir`.
    pub fn open(dir: &Path, name: &str) -> Result<Opened, StoreError> {
        let path = dir.join(format!("{name}.outbox.sqlite"));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(dir, "cannot create the directory", e))?;
        let lock_path = dir.join(format!("{name}.outbox.lock"));
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| err(&lock_path, "cannot create the lock file", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(err(&path, "in use by another process", "locked"))
            }
            Err(fs::TryLockError::Error(e)) => return Err(err(&lock_path, "cannot lock", e)),
        }
        if !path.exists() {
            // Created here, so SQLite never creates it with the process umask; its WAL
            // and shared-memory files take the same mode.
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| err(&path, "cannot create the file", e))?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(&path, "cannot open", e))?;
        let setup = || -> rusqlite::Result<String> {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "wal_autocheckpoint", WAL_CAP_PAGES)?;
            conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
        };
        match setup() {
            Ok(check) if check == "ok" => {}
            Ok(check) => return Err(err(&path, "the file is damaged (quick_check)", check)),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                return Err(err(&path, "in use by another process", "locked"))
            }
            Err(e) => return Err(err(&path, "not a readable outbox", e)),
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| err(&path, "cannot create the tables", e))?;
        let version: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .map_err(|e| err(&path, "no schema version", e))?;
        if version != "1" {
            return Err(err(&path, "unknown schema version", version));
        }
        let pending = {
            let mut st = conn
                .prepare(&format!("SELECT {META_COLUMNS} FROM outbox ORDER BY seq"))
                .map_err(|e| err(&path, "cannot read", e))?;
            let rows = st
                .query_map([], meta_of)
                .map_err(|e| err(&path, "cannot read", e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(&path, "cannot read", e))?
        };
        let dead: i64 = conn
            .query_row("SELECT COUNT(*) FROM dead", [], |r| r.get(0))
            .map_err(|e| err(&path, "cannot read", e))?;
        let group = Group::default();
        let checkpoints = Checkpointer::start(&path, group.commits.clone())?;
        Ok(Opened {
            store: SqliteStore {
                path,
                conn: Mutex::new(Some(conn)),
                group: Mutex::new(group),
                lock: Mutex::new(Some(lock)),
                checkpoints,
            },
            pending,
            dead: dead as u64,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file (after a commit in progress) and releases its lock, so a breaker of
    /// the same name can open it again; later operations fail.
    pub fn close(&self) {
        self.checkpoints.stop();
        self.conn.lock().take();
        self.lock.lock().take();
    }

    fn with_conn<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock();
        let conn = guard
            .as_mut()
            .ok_or_else(|| err(&self.path, what, "the outbox is closed"))?;
        f(conn).map_err(|e| err(&self.path, what, e))
    }

    /// Transactions committed so far (each is one WAL sync): the bench reports syncs per write.
    pub fn commits(&self) -> u64 {
        self.group
            .lock()
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

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
                g.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                std::mem::take(&mut g.queue)
            };
            let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
            for (reply, r) in replies.into_iter().zip(self.commit(&ops)) {
                reply.send(r);
            }
        }
    }

    /// Runs `op` in the next group commit; returns once it is on disk (blocking).
    fn run(&self, op: Op) -> Result<Done, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.push(op, Reply::Sync(tx)) {
            self.commit_all();
        }
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError("the outbox commit was lost".into())))
    }

    /// Runs `op` in the next group commit; resolves once it is on disk. Commits on the
    /// runtime's blocking pool (and paused-time tests do not advance while it runs).
    async fn run_async(self: &Arc<Self>, op: Op) -> Result<Done, StoreError> {
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

    /// Appends a write; returns its sequence number once it is synced.
    pub fn append(&self, row: NewRow) -> Result<u64, StoreError> {
        match self.run(Op::Append(row))? {
            Done::Seq(s) => Ok(s),
            other => Err(StoreError(format!("unexpected {other:?}"))),
        }
    }

    /// [`SqliteStore::append`] from async code (no thread parked per writer).
    pub async fn append_async(self: &Arc<Self>, row: NewRow) -> Result<u64, StoreError> {
        match self.run_async(Op::Append(row)).await? {
            Done::Seq(s) => Ok(s),
            other => Err(StoreError(format!("unexpected {other:?}"))),
        }
    }

    /// Delivered: the write leaves the queue.
    pub fn delete(&self, seq: u64) -> Result<(), StoreError> {
        self.run(Op::Delete(seq)).map(drop)
    }

    /// [`SqliteStore::delete`] from async code.
    pub async fn delete_async(self: &Arc<Self>, seq: u64) -> Result<(), StoreError> {
        self.run_async(Op::Delete(seq)).await.map(drop)
    }

    pub fn reschedule(
        &self,
        seq: u64,
        next_at_ms: u64,
        attempts: u32,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.run(Op::Reschedule {
            seq,
            next_at_ms,
            attempts,
            error,
        })
        .map(drop)
    }

    /// Moves a write to the dead letters, with DNAStore's answer when there was one.
    pub fn bury(
        &self,
        seq: u64,
        reason: &str,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.run(Op::Bury {
            seq,
            reason: reason.to_string(),
            status,
            answer,
            at_ms,
        })
        .map(drop)
    }

    /// A dead letter back in the queue (at its end, attempts reset, age from `now_ms`);
    /// its new schedule entry.
    pub fn revive(&self, id: &str, now_ms: u64) -> Result<Option<Meta>, StoreError> {
        match self.run(Op::Revive {
            id: id.to_string(),
            now_ms,
        })? {
            Done::Revived(m) => Ok(m),
            other => Err(StoreError(format!("unexpected {other:?}"))),
        }
    }

    /// Removes a queued write or a dead letter for good; false if there is none.
    pub fn discard(&self, id: &str) -> Result<bool, StoreError> {
        match self.run(Op::Discard(id.to_string()))? {
            Done::Discarded(b) => Ok(b),
            other => Err(StoreError(format!("unexpected {other:?}"))),
        }
    }

    /// A queued write's encoding and MAC.
    pub fn load(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        self.with_conn("read failed", |c| {
            c.query_row(
                "SELECT write, mac FROM outbox WHERE seq = ?1",
                [seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// The last error of a queued write (for listing).
    pub fn last_error(&self, seq: u64) -> Option<String> {
        self.with_conn("read failed", |c| {
            c.query_row(
                "SELECT last_error FROM outbox WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()
        })
        .ok()
        .flatten()
        .flatten()
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadRow>, StoreError> {
        self.with_conn("read failed", |c| {
            let mut st = c.prepare_cached(
                "SELECT id, reason, status, answer, attempts, created_at_ms, died_at_ms, write FROM dead ORDER BY seq LIMIT ?1",
            )?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(DeadRow {
                    id: r.get(0)?,
                    reason: r.get(1)?,
                    status: r.get::<_, Option<i64>>(2)?.map(|s| s as u16),
                    answer: r.get(3)?,
                    attempts: r.get::<_, i64>(4)? as u32,
                    created_at_ms: r.get::<_, i64>(5)? as u64,
                    died_at_ms: r.get::<_, i64>(6)? as u64,
                    blob: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn dead_count(&self) -> u64 {
        self.with_conn("read failed", |c| {
            c.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
        .unwrap_or(0)
    }
}

/// The columns [`meta_of`] reads, in its order.
const META_COLUMNS: &str = "seq, id, ordering_key, next_at_ms, attempts, size, created_at_ms";

fn meta_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Meta> {
    Ok(Meta {
        seq: r.get::<_, i64>(0)? as u64,
        id: r.get(1)?,
        ordering_key: r.get(2)?,
        next_at_ms: r.get::<_, i64>(3)? as u64,
        attempts: r.get::<_, i64>(4)? as u32,
        size: r.get::<_, i64>(5)? as u64,
        created_at_ms: r.get::<_, i64>(6)? as u64,
    })
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
            reason,
            status,
            answer,
            at_ms,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dead (seq, id, ordering_key, created_at_ms, attempts, died_at_ms, reason, status, answer, size, write, mac)
                 SELECT seq, id, ordering_key, created_at_ms, attempts, ?2, ?3, ?4, ?5, size, write, mac FROM outbox WHERE seq = ?1",
            )?
            .execute(params![
                *seq as i64,
                *at_ms as i64,
                reason,
                status.map(i64::from),
                answer,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "dnastore-outbox-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn row(id: &str, key: Option<&str>) -> NewRow {
        NewRow {
            id: id.into(),
            ordering_key: key.map(str::to_string),
            created_at_ms: 7,
            size: 3,
            blob: b"abc".to_vec(),
            mac: None,
        }
    }

    #[test]
    fn appends_survive_reopening_and_every_change_is_kept() {
        let dir = temp_dir("reopen");
        {
            let o = SqliteStore::open(&dir, "b").unwrap();
            assert!(o.pending.is_empty());
            let s = o.store;
            let a = s.append(row("a", None)).unwrap();
            let b = s.append(row("b", Some("/k"))).unwrap();
            let c = s.append(row("c", None)).unwrap();
            s.reschedule(b, 900, 2, Some("EUPSTREAM".into())).unwrap();
            s.delete(a).unwrap();
            s.bury(c, "http_4xx", Some(422), Some(b"{\"e\":1}".to_vec()), 1000)
                .unwrap();
            assert_eq!(s.last_error(b).as_deref(), Some("EUPSTREAM"));
        }
        let o = SqliteStore::open(&dir, "b").unwrap();
        assert_eq!(o.pending.len(), 1);
        assert_eq!(
            (
                o.pending[0].id.as_str(),
                o.pending[0].next_at_ms,
                o.pending[0].attempts
            ),
            ("b", 900, 2)
        );
        assert_eq!(o.dead, 1);
        let dead = o.store.dead_letters(10).unwrap();
        assert_eq!(
            (dead[0].id.as_str(), dead[0].status, dead[0].reason.as_str()),
            ("c", Some(422), "http_4xx")
        );
        let revived = o.store.revive("c", 2000).unwrap().unwrap();
        assert!(
            revived.seq > o.pending[0].seq,
            "back at the end of the queue"
        );
        assert_eq!(
            revived.created_at_ms, 2000,
            "its age counts from the retry (an expired write would expire again at once)"
        );
        assert_eq!(o.store.dead_count(), 0);
        assert!(o.store.discard("b").unwrap());
        assert!(!o.store.discard("nope").unwrap());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_appends_share_commits() {
        let dir = temp_dir("group");
        let s = Arc::new(SqliteStore::open(&dir, "b").unwrap().store);
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        s.append(row(&format!("{t}-{i}"), None)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let commits = s.commits();
        assert!(commits < 800, "800 appends in {commits} commits");
        drop(s);
        assert_eq!(SqliteStore::open(&dir, "b").unwrap().pending.len(), 800);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_private_locked_and_never_emptied_when_damaged() {
        let dir = temp_dir("safety");
        let first = SqliteStore::open(&dir, "b").unwrap();
        first.store.append(row("a", None)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(first.store.path()), 0o600);
        assert_eq!(mode(&dir.join("b.outbox.sqlite-wal")), 0o600);
        assert_eq!(mode(&dir.join("b.outbox.sqlite-shm")), 0o600);
        assert_eq!(mode(&dir.join("b.outbox.lock")), 0o600);
        // A second opener (another process would be the same) is refused.
        let e = SqliteStore::open(&dir, "b").err().expect("locked");
        assert!(
            e.0.contains("b.outbox.sqlite") && e.0.contains("in use"),
            "{e}"
        );
        drop(first);

        let bad = dir.join("x.outbox.sqlite");
        fs::write(&bad, vec![0x42; 8192]).unwrap();
        let e = SqliteStore::open(&dir, "x").err().expect("garbage");
        assert!(e.0.contains(&bad.display().to_string()), "{e}");
        assert_eq!(fs::read(&bad).unwrap(), vec![0x42; 8192], "never emptied");
        let _ = fs::remove_dir_all(&dir);
    }
}
