//! The embedded store: one SQLite file per breaker (`<dir>/<name>.outbox.sqlite`), in WAL
//! mode with `synchronous=FULL`, so a write is on disk before `queued` is returned and
//! survives a crash or a power loss. (`synchronous=NORMAL` would sync the WAL only at
//! checkpoints: a power loss could then take back writes already answered `queued`.)
//!
//! Why SQLite over redb (measured by `outbox-store-choice`, bench/README.md): both lost no
//! acknowledged write over SIGKILLs at random points; SQLite gave more writes/s behind the
//! same group commit, its file format has been stable since 2004 (a queue written by one
//! release must be readable by the next), and an operator can open the file with `sqlite3`.
//!
//! Split by what each part owns: `commit.rs` (group commit: every change in a batch, one
//! sync each), `checkpoint.rs` (copying the WAL into the file: once a second while busy,
//! all of it when idle), `record.rs` (what the store acknowledged, kept beside it, and the
//! check at open that the file and its WAL still hold it).
//!
//! What a store is on disk: the file, its `-wal` (every commit since the last checkpoint
//! lives only there), SQLite's `-shm` index, and the `-ack` record. At rest (idle, or
//! after a clean close) the file holds everything and the WAL is empty or gone.
//!
//! One process per file, for the life of the process (`<name>.outbox.lock`, held with an
//! exclusive `flock`): a second process gets a clear error instead of delivering the same
//! writes. A corrupt or unreadable file, and a file whose WAL lost acknowledged writes, is
//! an error naming the path; neither is ever emptied or rewritten.

mod checkpoint;
mod commit;
mod lock;
mod record;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_view;
#[cfg(test)]
mod tests_wal;
mod view;

pub use view::{store_path, View};

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::schedule::Meta;
use checkpoint::Checkpointer;
use commit::{Done, Group, Op};
use lock::StoreLock;
use record::Record;

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

pub struct SqliteStore {
    path: PathBuf,
    /// `None` once closed: the file and its lock are released.
    conn: Mutex<Option<Connection>>,
    group: Mutex<Group>,
    /// The process's claim on the file (an exclusive flock), released on close (lock.rs).
    lock: Mutex<Option<StoreLock>>,
    checkpoints: Checkpointer,
    /// What the store acknowledged (`record.rs`), moved by the committer.
    record: Record,
}

/// WAL pages after which a commit checkpoints by itself (64 MiB at SQLite's 4 KiB pages):
/// only if the background checkpoints fell that far behind.
const WAL_CAP_PAGES: u32 = 16_384;

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

/// The embedded store's file stem for breaker `name` (`<stem>.sqlite`, `<stem>.lock`).
fn stem(name: &str) -> String {
    format!("{name}.outbox")
}

pub(super) fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("outbox store {}: {what}: {e}", path.display()))
}

impl SqliteStore {
    /// Opens (or creates, mode 0600 in a 0700 directory) the breaker's file under `dir`.
    pub fn open(dir: &Path, name: &str) -> Result<Opened, StoreError> {
        Self::open_with(dir, name, true)
    }

    /// [`SqliteStore::open`]; `checkpoints: false` (tests) leaves every commit in the WAL,
    /// as a process killed during a burst does.
    pub(super) fn open_with(
        dir: &Path,
        name: &str,
        checkpoints: bool,
    ) -> Result<Opened, StoreError> {
        match Self::open_stem(dir, &stem(name), checkpoints)? {
            Some(o) => Ok(o),
            None => Err(err(
                &store_path(dir, name),
                "in use by another process (or by a breaker of this name still queueing \
                 its writes in flight at shutdown)",
                "locked",
            )),
        }
    }

    /// [`SqliteStore::open`] unless another process holds the store: then `None`, and
    /// nothing was read or written (for the operator's commands, which must not touch a
    /// store a live service holds).
    pub fn open_if_free(dir: &Path, name: &str) -> Result<Option<Opened>, StoreError> {
        Self::open_stem(dir, &stem(name), true)
    }

    /// Opens `<dir>/<stem>.sqlite` (locked by `<stem>.lock`) unless another process (or
    /// another breaker of this process) holds it: then `None`, and nothing was read or
    /// written. The embedded store's stem is `<name>.outbox`; the fleet's spill files use
    /// another (`spill/`), in the same format and with the same guarantees.
    pub(super) fn open_stem(
        dir: &Path,
        stem: &str,
        checkpoints: bool,
    ) -> Result<Option<Opened>, StoreError> {
        match StoreLock::take(dir, stem)? {
            Some(lock) => {
                Self::open_locked(dir.join(format!("{stem}.sqlite")), lock, checkpoints).map(Some)
            }
            None => Ok(None),
        }
    }

    fn open_locked(
        path: PathBuf,
        lock: StoreLock,
        checkpoints: bool,
    ) -> Result<Opened, StoreError> {
        // Before SQLite sees the files: its recovery would drop what a damaged WAL lost,
        // and its first write would overwrite the WAL (record.rs).
        record::verify(&path)?;
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
        // What recovery found in the WAL goes into the file now, and the file holds the
        // schema before the first write is acknowledged: from here on a WAL lost or damaged
        // loses only what was written after this point, and the record tells.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| err(&path, "cannot checkpoint", e))?;
        let through = Self::last_seq(&conn).map_err(|e| err(&path, "cannot read", e))?;
        let record = Record::open(&record::beside(&path, "-ack"), through)?;
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
        let checkpoints = Checkpointer::start(&path, group.commits.clone(), checkpoints)?;
        Ok(Opened {
            store: SqliteStore {
                path,
                conn: Mutex::new(Some(conn)),
                group: Mutex::new(group),
                lock: Mutex::new(Some(lock)),
                checkpoints,
                record,
            },
            pending,
            dead: dead as u64,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file (after a commit in progress) and releases its lock, so a breaker of
    /// the same name can open it again; later operations fail. The last connection's close
    /// copies the WAL into the file and removes it: a store closed cleanly is one file
    /// (and its record).
    pub fn close(&self) {
        self.checkpoints.stop();
        self.conn.lock().take();
        self.lock.lock().take();
    }

    pub(super) fn with_conn<T>(
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
        attempts: u32,
        reason: &str,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.run(Op::Bury {
            seq,
            attempts,
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
        self.with_conn("read failed", |c| dead_rows(c, limit))
    }

    pub fn dead_count(&self) -> u64 {
        self.with_conn("read failed", |c| {
            c.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get::<_, i64>(0))
        })
        .map(|n| n as u64)
        .unwrap_or(0)
    }
}

/// The oldest `limit` dead letters (the service's and the read-only view's one query).
pub(super) fn dead_rows(c: &Connection, limit: usize) -> rusqlite::Result<Vec<DeadRow>> {
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
}

/// The columns [`meta_of`] reads, in its order.
pub(super) const META_COLUMNS: &str =
    "seq, id, ordering_key, next_at_ms, attempts, size, created_at_ms";

pub(super) fn meta_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Meta> {
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
