//! Closing the outbox without losing the durable writes in flight.
//!
//! A durable write still running when its breaker shuts down (a rolling deploy sends SIGTERM
//! to every replica) has an unknown outcome: it may have reached DNAStore. That is what the
//! outbox is for, so the breaker queues it, with its Idempotency-Key, before the call
//! settles (`Breaker::execute`), and the next process delivers it. For that the store must
//! still be open when those calls come to queue their writes, although the breaker closed
//! the outbox at the same moment: each durable call holds the outbox ([`Hold`]) from its
//! start to its end, and [`Outbox::close`] stops the delivery loop at once but closes the
//! store (the embedded file and its lock; the fleet's Redis connection, after its writes
//! are handed back) only once the last hold is released.
//!
//! Bounded: each of those enqueues has [`SHUTDOWN_QUEUE_TIMEOUT`] (above the fleet's Redis
//! connect and response timeouts at their defaults, so Redis's own bound answers first), and a
//! write that could not be queued in it is reported to its caller (ESHUTDOWN, saying it was
//! not queued and why), never dropped in silence. `shutdown()` itself never waits for them.

use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::Outbox;

/// Longest a durable write in flight at shutdown waits for the outbox to take it.
pub const SHUTDOWN_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Durable calls running, and whether the outbox was closed meanwhile.
#[derive(Default)]
pub(super) struct Pending {
    calls: usize,
    closing: bool,
    /// The store was closed: nothing more is appended.
    closed: bool,
}

/// A durable call's claim on the outbox: the store stays open while it is held.
pub struct Hold(Arc<Outbox>);

impl Drop for Hold {
    fn drop(&mut self) {
        let close = {
            let mut p = self.0.pending.lock();
            p.calls -= 1;
            p.calls == 0 && p.closing && !std::mem::replace(&mut p.closed, true)
        };
        if close {
            // Where the last durable call in flight ends (a runtime thread), once, at
            // shutdown: closing the file takes its final checkpoint there.
            self.0.close_store();
        }
        // The fleet's hand-back waits for the last one.
        self.0.settled.notify_waiters();
    }
}

impl Outbox {
    /// Keeps the store open until the returned hold is dropped (see the module's doc).
    pub fn hold(self: &Arc<Self>) -> Hold {
        self.pending.lock().calls += 1;
        Hold(self.clone())
    }

    /// Durable calls holding the outbox now.
    pub(super) fn holds(&self) -> usize {
        self.pending.lock().calls
    }

    /// Whether appends are refused: the store was closed.
    pub(super) fn store_closed(&self) -> bool {
        self.pending.lock().closed
    }

    /// Stops the delivery loop (the breaker closed). Queued writes stay in the store; the
    /// store closes now, or when the last durable call in flight has queued its write.
    pub fn close(&self) {
        self.stop.cancel();
        let close = {
            let mut p = self.pending.lock();
            p.closing = true;
            p.calls == 0 && !std::mem::replace(&mut p.closed, true)
        };
        if close {
            self.close_store();
        }
        self.wake.notify_waiters();
        self.settled.notify_waiters();
    }

    /// The embedded file is closed (and its lock released, so a breaker of the same name
    /// can open it), as is the fleet's spill file: writes it holds stay there for the next
    /// process on the directory. The fleet's connection is closed by its hand-back, which
    /// waits for the holds.
    fn close_store(&self) {
        match &self.backend {
            Backend::Embedded(s) => s.close(),
            Backend::Fleet(f) => {
                if let Some(sp) = &f.spill {
                    sp.close();
                }
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// For the fleet's hand-back: waits (at most `limit`) until no delivery is in flight
    /// and no durable call holds the outbox.
    pub(super) async fn quiesce(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if (self.schedule.lock().in_flight() == 0 && self.holds() == 0)
                || tokio::time::Instant::now() >= until
            {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), settled).await;
        }
    }
}
