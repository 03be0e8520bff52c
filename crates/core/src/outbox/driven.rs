//! What the delivery loop asks of the outbox. The loop itself lives with the breaker that
//! drives it (`breaker/delivery.rs`: it admits and executes each delivery as a call); the
//! outbox keeps the queue, its pacing state, its counts and its series, and says what
//! happened (a delivery's age, whether a write was buried) for the breaker to report.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio_util::sync::WaitForCancellationFuture;

use super::{Meta, Outbox, Write};
use crate::observer::DeadReason;

/// How one delivery ended, for the run's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Delivered,
    Dead,
    Again,
}

impl Outbox {
    /// Counts one pass of the loop (a test holds it to not spinning).
    pub fn count_turn(&self) {
        self.turns.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves when something changed: a write was queued, revived or finished. Enable it
    /// before looking, so a change in between is not missed.
    pub fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// Wakes the delivery loop to look again (the circuit was closed or disabled by hand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when the outbox closes.
    pub fn stopped(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Wall ms before which the loop starts nothing (DNAStore's Retry-After).
    pub fn not_before_ms(&self) -> u64 {
        self.not_before_ms.load(Ordering::Acquire)
    }

    /// Wakes `drain` (the circuit is open: nothing more will settle for now).
    pub fn notify_settled(&self) {
        self.settled.notify_waiters();
    }

    /// How many writes are queued, and when the next one not yet due is.
    pub fn queue_state(&self) -> (usize, Option<u64>) {
        let s = self.schedule.lock();
        (s.len(), s.next_due_ms())
    }

    pub fn claim(&self, now_ms: u64, max: usize) -> Vec<Meta> {
        self.schedule.lock().claim(now_ms, max)
    }

    pub fn release(&self, m: &Meta) {
        self.schedule.lock().release(m.seq);
        self.store_release(m);
    }

    /// An older write of `m`'s key is held by another replica: looked at again at `at_ms`.
    pub fn wait_turn(&self, m: &Meta, at_ms: u64) {
        self.schedule.lock().reschedule(m.seq, at_ms, m.attempts);
    }

    /// A delivery ended: counted for the run, and the loop woken.
    pub fn finished(&self, d: Done) {
        match d {
            Done::Delivered => {
                self.run_delivered.fetch_add(1, Ordering::Relaxed);
            }
            Done::Dead => {
                self.run_dead.fetch_add(1, Ordering::Relaxed);
            }
            Done::Again => {}
        }
        self.settled.notify_waiters();
        self.wake.notify_one();
    }

    /// What finished since the last look: (delivered, dead-lettered).
    pub fn take_tally(&self) -> (u64, u64) {
        (
            self.run_delivered.swap(0, Ordering::Relaxed),
            self.run_dead.swap(0, Ordering::Relaxed),
        )
    }

    /// The stored write, verified; the dead-letter reason otherwise.
    pub async fn load(&self, m: &Meta) -> Result<Write, DeadReason> {
        let Some((blob, mac)) = self.stored(m).await else {
            return Err(DeadReason::Unreadable);
        };
        if !Write::verify(&blob, mac.as_deref(), self.secret.as_deref()) {
            return Err(DeadReason::Tampered);
        }
        Write::decode(&blob).ok_or(DeadReason::Unreadable)
    }

    /// Older than `outboxMaxAgeMs` at `now_ms`.
    pub fn expired(&self, m: &Meta, now_ms: u64) -> bool {
        now_ms.saturating_sub(m.created_at_ms) > self.cfg.max_age.as_millis() as u64
    }

    /// `m` reached DNAStore: out of the queue, counted. Returns how long after it was
    /// queued.
    pub async fn delivered(&self, m: &Meta, now_ms: u64) -> Duration {
        self.store_delivered(m).await;
        self.schedule.lock().remove(m.seq);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let after = Duration::from_millis(now_ms.saturating_sub(m.created_at_ms));
        self.metrics.delivered.inc();
        self.metrics.delivery_seconds.observe(after.as_secs_f64());
        self.refresh_gauges(Some(now_ms));
        after
    }

    /// Moves `m` to the dead letters, recording `attempts` deliveries tried (`m.attempts`,
    /// plus one when DNAStore's answer to this delivery is why); true when it is there now
    /// (false: another replica finished it first, or it could not be moved and is tried
    /// again later).
    pub async fn bury(
        &self,
        m: &Meta,
        attempts: u32,
        reason: DeadReason,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        now_ms: u64,
    ) -> bool {
        match self
            .store_bury(m, attempts, reason.as_str(), status, answer, now_ms)
            .await
        {
            Some(true) => {}
            // Another replica finished it first.
            Some(false) => {
                self.forget(m);
                return false;
            }
            None => {
                // Could not move it: try again later rather than lose or resend it now.
                self.schedule
                    .lock()
                    .reschedule(m.seq, now_ms + 1000, m.attempts);
                return false;
            }
        }
        self.schedule.lock().remove(m.seq);
        self.dead.fetch_add(1, Ordering::Relaxed);
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.metrics.dead_lettered(reason).inc();
        self.refresh_gauges(Some(now_ms));
        true
    }

    /// Not delivered this time (`error` is the code why): back in line after `delay` (the
    /// breaker's jittered backoff, at least DNAStore's Retry-After, which also pauses the
    /// loop).
    pub async fn again(
        &self,
        m: &Meta,
        delay: Duration,
        error: &str,
        retry_after: Option<Duration>,
        now_ms: u64,
    ) {
        let attempts = m.attempts + 1;
        let delay = delay.max(retry_after.unwrap_or_default());
        if let Some(ra) = retry_after {
            let until = now_ms + ra.as_millis() as u64;
            self.not_before_ms.fetch_max(until, Ordering::AcqRel);
        }
        let next = now_ms + delay.as_millis() as u64;
        self.store_again(m, next, attempts, error).await;
        self.schedule.lock().reschedule(m.seq, next, attempts);
    }

    /// Resolves when the queue is empty or the circuit is open (`is_open`), or the outbox
    /// closes.
    pub async fn drain(&self, is_open: &(dyn Fn() -> bool + Sync)) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.is_closed() || is_open() {
                return;
            }
            if self.schedule.lock().is_empty() && self.queued_now().await == 0 {
                return;
            }
            // Bounded wait: the circuit opening notifies nothing here.
            let _ = tokio::time::timeout(Duration::from_millis(100), settled).await;
        }
    }
}
