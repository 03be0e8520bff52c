//! The store's record of what it acknowledged (`<name>.outbox.sqlite-ack`), and the check,
//! made before SQLite touches the files, that the file and its WAL still hold it.
//!
//! Why a record outside the database: in WAL mode a commit lives only in the `-wal` until a
//! checkpoint copies it into the file, and SQLite's recovery keeps the WAL's frames up to
//! the first whose checksum or salt does not verify, without a word. A WAL truncated,
//! garbled or removed (an operator copying "the" file without it) therefore lost
//! acknowledged writes silently, and a missing WAL cannot be told from one that held
//! nothing: only evidence kept elsewhere can say what the WAL should have held. A checkpoint
//! after every commit would keep it in the file, at a checkpoint's cost (writing the pages
//! into the file, syncing it) on every enqueue; the record costs one small synced write.
//!
//! What it says: the highest sequence number of a write the store acknowledged (the outbox
//! table's AUTOINCREMENT, which deletions never lower). It is overwritten in place, at a
//! fixed size (so `fdatasync` flushes no metadata), after each group commit that appended
//! and before anyone in that batch is answered: it never says less than what was
//! acknowledged, and never more than what was durably committed. So at open, a file that
//! (with its WAL, as SQLite recovers it) holds less than the record says has lost
//! acknowledged writes, and the store refuses to open, naming the files and the count,
//! leaving every byte of them as it found them. Deliveries (deletes, reschedules) do not
//! touch it: losing one of those sends a write again, with its Idempotency-Key.
//!
//! If writing the record fails (a failing disk), the batch is still acknowledged: its
//! writes are durable in the WAL, and answering "not stored" for a write that will be
//! delivered would be the lie. The record then lags (it is a lower bound; the next batch
//! writes it again) and only the check's reach shrinks.
//!
//! The file is SQLite's database plus its `-wal` (the `-shm` is an index SQLite rebuilds)
//! plus this record: a copy or a backup takes them together (docs/operations.md, production checklist).

use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::{err, SqliteStore, StoreError};

const PREFIX: &str = "dnastore outbox: acknowledged through write ";
/// Digits of the number, zero-padded: the file never changes size.
const DIGITS: usize = 20;

/// `<file>-<suffix>`, as SQLite names `-wal` and `-shm`.
pub(super) fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn encode(through: u64) -> String {
    format!("{PREFIX}{through:0DIGITS$}\n")
}

/// The record's number; `None` without a record (a store older than it, or a new one).
fn read(path: &Path) -> Result<Option<u64>, StoreError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(path, "cannot read the acknowledged-writes record", e)),
    };
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.strip_prefix(PREFIX))
        .and_then(|t| t.strip_suffix('\n'))
        .filter(|n| n.len() == DIGITS && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            err(
                path,
                "the acknowledged-writes record is damaged (it is left as it is; remove it to open the store without the check)",
                "unreadable",
            )
        })
}

/// The open record, kept by the store to move it after commits that appended.
pub(super) struct Record {
    file: fs::File,
    through: AtomicU64,
}

impl Record {
    /// Creates (0600) or overwrites the record with `through`, synced, the directory too.
    pub(super) fn open(path: &Path, through: u64) -> Result<Self, StoreError> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(path, "cannot create the acknowledged-writes record", e))?;
        let r = Self {
            file,
            through: AtomicU64::new(through),
        };
        r.write(through)
            .and_then(|()| r.file.set_len(encode(through).len() as u64))
            .and_then(|()| match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => fs::File::open(d)?.sync_all(),
                _ => Ok(()),
            })
            .map_err(|e| err(path, "cannot write the acknowledged-writes record", e))?;
        Ok(r)
    }

    fn write(&self, through: u64) -> std::io::Result<()> {
        let line = encode(through);
        self.file.write_all_at(line.as_bytes(), 0)?;
        self.file.sync_data()
    }

    /// The store acknowledged writes through `through` (the committer's thread only, one
    /// committer at a time). A failure leaves the record behind (see the module's doc).
    pub(super) fn advance(&self, through: u64) {
        if through > self.through.load(Ordering::Relaxed) && self.write(through).is_ok() {
            self.through.store(through, Ordering::Relaxed);
        }
    }
}

/// Checked before SQLite opens anything: whether the file (with its WAL) still holds every
/// write the record says was acknowledged. Refuses otherwise, naming the files and the
/// count; nothing is written, so the evidence stays byte for byte as it was found.
pub(super) fn verify(db: &Path) -> Result<(), StoreError> {
    let ack = beside(db, "-ack");
    let wal = beside(db, "-wal");
    let recorded = read(&ack)?.unwrap_or(0);
    let size = |p: &Path| fs::metadata(p).ok().map(|m| m.len());
    let wal_size = size(&wal);
    // The message names the file in full once (err), its companions by name.
    let name = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let (wal_name, ack_name) = (name(&wal), name(&ack));
    let wal_state = match wal_size {
        Some(n) => format!("{wal_name} has {n} bytes"),
        None => format!("{wal_name} is missing"),
    };
    let refuse = |what: String| StoreError(format!("outbox store {}: {what}", db.display()));
    let db_size = size(db);
    if db_size.unwrap_or(0) == 0 {
        // SQLite takes a missing or empty file for a new database, and deletes a WAL beside
        // it: it must not see this one.
        if wal_size.unwrap_or(0) == 0 && recorded == 0 {
            return Ok(());
        }
        let record = if recorded > 0 {
            format!(", and {ack_name} records writes through #{recorded} as acknowledged")
        } else {
            String::new()
        };
        return Err(refuse(format!(
            "the file is {}, but {wal_state}{record}. Nothing was changed: restore the file \
             from where it was copied (a store is the file, its -wal and its -ack, copied \
             together), or remove {wal_name} and {ack_name} to start with an empty queue",
            if db_size.is_some() {
                "empty"
            } else {
                "missing"
            },
        )));
    }
    if recorded == 0 {
        return Ok(());
    }
    let held = held(db, wal_size.is_some())?;
    if held >= recorded {
        return Ok(());
    }
    Err(refuse(format!(
        "up to {} acknowledged writes are missing: {ack_name} records writes through \
         #{recorded}, the file and its WAL hold writes through #{held} ({wal_state}). The WAL \
         was truncated, damaged or removed, or the files come from different copies. Nothing \
         was changed: restore the WAL (a store is the file, its -wal and its -ack, copied \
         together), or remove {ack_name} to accept the loss and deliver what the file holds",
        recorded - held,
    )))
}

/// Characters SQLite's URI parser would read as syntax in a path.
const URI_PATH: &AsciiSet = &CONTROLS.add(b'?').add(b'#').add(b'%');

/// The highest sequence the file holds, read with SQLite read-only: its recovery then reads
/// the WAL (writing only the `-shm` index) and cannot rewrite or delete it. Without a WAL,
/// the file alone is opened as immutable, so that no empty WAL is created beside it.
fn held(db: &Path, has_wal: bool) -> Result<u64, StoreError> {
    let conn = open_read_only(db, has_wal)?;
    SqliteStore::last_seq(&conn).map_err(|e| err(db, "not a readable outbox", e))
}

/// The file opened as [`held`] opens it (also the operator's read-only view, `view.rs`),
/// whether a WAL is there now; nothing it does can write, checkpoint or delete the store's
/// files (a read-only connection never checkpoints, on close either).
pub(super) fn read_only(db: &Path) -> Result<Connection, StoreError> {
    open_read_only(db, beside(db, "-wal").exists())
}

fn open_read_only(db: &Path, has_wal: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match db.to_str().filter(|_| !has_wal) {
        Some(p) => {
            // `file:///abs` or `file:rel`: a path starting with // is never read as a host.
            let sep = if p.starts_with('/') { "//" } else { "" };
            let uri = format!(
                "file:{sep}{}?mode=ro&immutable=1",
                utf8_percent_encode(p, URI_PATH)
            );
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
        }
        None => Connection::open_with_flags(db, flags),
    }
    .and_then(|c| {
        // Belt and braces: a read-only connection cannot checkpoint anyway.
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        Ok(c)
    })
    .map_err(|e| err(db, "not a readable outbox", e))
}

/// Test support: what the record says now.
#[cfg(test)]
pub(super) fn recorded(db: &Path) -> Option<u64> {
    read(&beside(db, "-ack")).ok().flatten()
}
