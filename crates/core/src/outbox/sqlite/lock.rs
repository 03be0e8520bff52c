//! The claim one process holds on a store: an exclusive `flock` on `<stem>.lock`.
//!
//! Why the lock is released with an explicit unlock before its file is closed: a `flock`
//! belongs to the open file description, which every process forked from this one shares
//! until it execs (the descriptor is close-on-exec, so a child keeps it only for that
//! window). A service that spawns children (or a test binary starting `redis-server`) on
//! another thread would otherwise keep the lock alive after `close()`, and a reopen right
//! after would find the store "in use by another process". `LOCK_UN` releases the lock for
//! every descriptor sharing it, at once.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::{err, StoreError};

/// The held lock; released on drop.
pub(super) struct StoreLock(fs::File);

impl StoreLock {
    /// Takes the lock of the store with file stem `stem` (creating the directory and the
    /// lock file); `None` when another process (or another breaker of this process) holds it.
    pub(super) fn take(dir: &Path, stem: &str) -> Result<Option<StoreLock>, StoreError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(dir, "cannot create the directory", e))?;
        let lock_path = dir.join(format!("{stem}.lock"));
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| err(&lock_path, "cannot create the lock file", e))?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(StoreLock(lock))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(err(&lock_path, "cannot lock", e)),
        }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Not just the close that follows: a forked child's copy of the descriptor would
        // keep the lock (see the module comment). An error here leaves the close to release it.
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The CI flake of `reads_a_held_store_and_changes_it_only_once_it_is_free`: other
    /// tests spawn `redis-server` while this one closes a store and takes it again.
    #[test]
    fn a_released_lock_is_free_at_once_while_other_threads_spawn_children() {
        let dir = super::super::tests::temp_dir("lock-spawn");
        let stop = Arc::new(AtomicBool::new(false));
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let _ = Command::new("true").status();
                    }
                })
            })
            .collect();
        let (mut tries, mut held) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && tries < 20_000 {
            // Each round takes the lock and releases it; any take that finds it held saw
            // the previous release not yet effective.
            tries += 1;
            match StoreLock::take(&dir, "s").unwrap() {
                Some(lock) => drop(lock),
                None => {
                    held += 1;
                    // Wait out the child's window before the next round.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for s in spawners {
            s.join().unwrap();
        }
        let _ = fs::remove_dir_all(&dir);
        assert!(tries > 100, "only {tries} rounds in 5 s");
        assert_eq!(
            held, 0,
            "the lock looked held right after release in {held} of {tries} rounds"
        );
    }
}
