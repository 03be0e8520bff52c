//! A read-only view of an embedded store, for the operator's commands (`dnastore-breaker
//! outbox stats|list|dead`), which must work while a service holds the store.
//!
//! It takes no lock of ours (`<name>.outbox.lock` stays the service's), writes nothing and
//! never checkpoints: it opens the file as the startup check does (`record::read_only`:
//! SQLite read-only with the WAL read through its shared index, or the file alone as
//! immutable when there is no WAL, so that no empty WAL is created beside a store at rest),
//! after running that same check (`record::verify`), so a store the service would refuse
//! to open is reported the same way rather than listed short. Each command reads in one
//! read transaction: a consistent snapshot even while the live writer commits (WAL readers
//! never block it, nor it them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::{dead_rows, err, meta_of, record, DeadRow, StoreError, Stored, META_COLUMNS};
use crate::outbox::schedule::Meta;

/// Longest a read waits for a lock SQLite takes briefly (the WAL index being rebuilt).
const BUSY: Duration = Duration::from_secs(2);

/// What the store holds, as one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub entries: u64,
    pub bytes: u64,
    pub dead: u64,
    pub oldest_created_at_ms: Option<u64>,
}

/// A queued write as the view lists it.
pub struct ViewRow {
    pub meta: Meta,
    pub last_error: Option<String>,
    pub blob: Vec<u8>,
}

pub struct View {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// The store file of breaker `name` in `dir`.
pub fn store_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.outbox.sqlite"))
}

impl View {
    /// Opens breaker `name`'s store under `dir` read-only; an error if there is none, or if
    /// the service's own check at startup would refuse it.
    pub fn open(dir: &Path, name: &str) -> Result<Self, StoreError> {
        let path = store_path(dir, name);
        if !path.is_file() {
            return Err(StoreError(format!(
                "outbox store {}: no such file (no embedded outbox of breaker {name} in {})",
                path.display(),
                dir.display()
            )));
        }
        record::verify(&path)?;
        let conn = record::read_only(&path)?;
        let setup = || -> rusqlite::Result<String> {
            conn.busy_timeout(BUSY)?;
            conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
        };
        match setup() {
            Ok(v) if v == "1" => {}
            Ok(v) => return Err(err(&path, "unknown schema version", v)),
            Err(e) => return Err(err(&path, "not a readable outbox", e)),
        }
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in one read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock();
        let tx = c
            .transaction()
            .map_err(|e| err(&self.path, "read failed", e))?;
        let out = f(&tx).map_err(|e| err(&self.path, "read failed", e))?;
        // Read-only: ending it releases the snapshot; there is nothing to commit.
        drop(tx);
        Ok(out)
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|c| {
            let (entries, bytes, oldest): (i64, i64, Option<i64>) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created_at_ms) FROM outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let dead: i64 = c.query_row("SELECT COUNT(*) FROM dead", [], |r| r.get(0))?;
            Ok(Counts {
                entries: entries as u64,
                bytes: bytes as u64,
                dead: dead as u64,
                oldest_created_at_ms: oldest.map(|o| o as u64),
            })
        })
    }

    /// Queued writes, oldest first (the order the service loads them in).
    pub fn list(&self, limit: usize) -> Result<Vec<ViewRow>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {META_COLUMNS}, last_error, write FROM outbox ORDER BY seq LIMIT ?1"
            ))?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(ViewRow {
                    meta: meta_of(r)?,
                    last_error: r.get(7)?,
                    blob: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadRow>, StoreError> {
        self.read(|c| dead_rows(c, limit))
    }

    /// The oldest queued writes' encodings and MACs (to check them against a secret).
    pub fn oldest_signed(&self, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT write, mac FROM outbox ORDER BY seq LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}
