//! Checkpoints (copying the WAL back into the file) run on a thread of their own with its
//! own connection, never inside a commit.
//!
//! While writes keep coming: PASSIVE, at most once a second (they never block a commit).
//! Run inside a commit, as SQLite does by default, they were the enqueue latency's tail:
//! p99 8 ms against 2.9 ms without them at 50 writers; every 100 ms they still cost 5 ms at
//! p99 (their fsync of the file competes with the WAL's), every second 2.3-3.0 ms.
//!
//! Once no commit came for [`IDLE`]: TRUNCATE, so that the file alone holds every
//! acknowledged write and the WAL is empty again. A store at rest is then one file (a copy
//! of it, or a WAL lost or damaged after that point, loses nothing), and the WAL does not
//! keep the size of the last burst. It blocks writers only for its own duration and only
//! when a write comes just as the store went quiet; the first commit after it pays for
//! growing the WAL file again. An idle store's thread sleeps until the next commit wakes
//! it (one atomic load per committed batch when it is awake).
//!
//! A large auto-checkpoint threshold remains as a bound on the WAL's size, should the
//! background checkpoints ever fall behind.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

use super::{err, StoreError};

/// How often a busy store's WAL is copied into the file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);
/// No commit for this long: the store is idle, the WAL goes into the file and is emptied.
pub(super) const IDLE: Duration = Duration::from_millis(200);

/// The background checkpoint thread and what wakes and stops it.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
    /// The thread waits for a commit (nothing left to checkpoint): the next commit wakes it.
    asleep: AtomicBool,
}

impl Checkpointer {
    /// Starts checkpointing `path` as `commits` moves. `enabled: false` (tests that need a
    /// WAL left as a crash leaves it) starts no thread.
    pub(super) fn start(
        path: &Path,
        commits: Arc<AtomicU64>,
        enabled: bool,
    ) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            asleep: AtomicBool::new(false),
        });
        if !enabled {
            return Ok(Self {
                shared,
                thread: Mutex::new(None),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(path, "cannot open the checkpoint connection", e))?;
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("dnastore-outbox-ckpt".into())
            .spawn(move || run(&conn, &s, &commits))
            .map_err(|e| err(path, "cannot start the checkpoint thread", e))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A batch was committed: wakes the thread if it sleeps until one is.
    pub(super) fn committed(&self) {
        if self.shared.asleep.load(Ordering::SeqCst) {
            // Under the lock: the thread is either waiting already or has not yet looked
            // at the commit count (and will see this commit).
            let _g = self.shared.stopped.lock();
            self.shared.wake.notify_one();
        }
    }

    pub(super) fn stop(&self) {
        *self.shared.stopped.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// A store dropped without `close` (its breaker dropped, never shut down) stops its thread
/// too, rather than leave it asleep with a connection open on the file.
impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: wait, look, checkpoint, until stopped. The WAL was emptied at open.
fn run(conn: &Connection, s: &Shared, commits: &AtomicU64) {
    let mut seen = commits.load(Ordering::SeqCst);
    // The commit count when the WAL was last emptied.
    let mut clean_at = seen;
    let mut last_passive = Instant::now();
    loop {
        {
            let mut stopped = s.stopped.lock();
            if !*stopped {
                if commits.load(Ordering::SeqCst) == clean_at {
                    s.asleep.store(true, Ordering::SeqCst);
                    // Looked at again after saying so: a commit in between sees `asleep`.
                    if commits.load(Ordering::SeqCst) == clean_at {
                        s.wake.wait(&mut stopped);
                    }
                    s.asleep.store(false, Ordering::SeqCst);
                } else {
                    s.wake.wait_for(&mut stopped, IDLE);
                }
            }
            if *stopped {
                return;
            }
        }
        let now = commits.load(Ordering::SeqCst);
        if now != seen {
            // Busy: commits since the last look.
            seen = now;
            if last_passive.elapsed() >= CHECKPOINT_EVERY {
                // Busy or failing: the next look tries again; the writer's cap bounds the WAL.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                last_passive = Instant::now();
            }
            continue;
        }
        if now == clean_at {
            continue;
        }
        // Idle for a whole look: everything into the file, the WAL emptied. A write that
        // comes meanwhile waits for it (busy handler); one that made it busy is tried again
        // at the next idle look.
        let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        if matches!(done, Ok(0)) {
            clean_at = now;
        }
    }
}
