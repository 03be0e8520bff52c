//! The delivery loop: drains the outbox whenever the breaker admits calls, through the same
//! breaker, retry policy and budget as live calls.
//!
//! Paced so a recovering DNAStore is not stampeded: at most `outboxRate` writes a second and
//! `outboxConcurrency` at a time; a Retry-After from DNAStore pauses the whole loop that
//! long; the loop looks no further while the circuit is open (the half-open trial may be a
//! queued write). A write DNAStore refuses (4xx other than 408/429) is dead-lettered with the
//! answer, never retried; a 5xx or transport failure stays queued with jittered backoff; a
//! write older than `outboxMaxAgeMs`, or one whose signature fails, is dead-lettered.
//!
//! The same loop drives both stores. For the fleet's it also gives the store its turn
//! (`Outbox::tick`: take writes, renew claims, read the shared counts) and never sleeps
//! past the next of those; and each attempt starts with the store's check that the write
//! is still this replica's and first of its ordering key (`Outbox::begin`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::fleet::{Begin, WAIT_POLL};
use super::{Meta, Outbox, Write};
use crate::breaker::{Breaker, Call};
use crate::error::Code;
use crate::observer::{Event, OutboxPhase};
use crate::outcome::CallOutcome;

/// Starts `b`'s delivery loop on `rt` (the breaker must have an outbox).
pub fn spawn_delivery(b: &Arc<Breaker>, ob: &Arc<Outbox>, rt: &tokio::runtime::Handle) {
    rt.spawn(run(Arc::downgrade(b), ob.clone()));
}

/// Tokens for `outboxRate`: refilled continuously, at most `burst` saved up.
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    fn new(rate: u32, burst: u32, now_ms: u64) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at_ms: now_ms,
        }
    }

    fn available(&mut self, now_ms: u64) -> usize {
        let dt = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.at_ms = now_ms.max(self.at_ms);
        self.tokens.floor() as usize
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// Time until the next whole token.
    fn refill_in(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate)
    }
}

/// One delivery run: from the first attempt on a queue with writes to the queue empty.
struct Run {
    started_at_ms: u64,
    delivered: u64,
    dead: u64,
    /// `delivered` when the run last paused: it is logged paused again only after it made
    /// progress, not on every failed half-open trial of one outage.
    paused_at: Option<u64>,
}

async fn run(weak: Weak<Breaker>, ob: Arc<Outbox>) {
    let concurrency = ob.cfg.concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let mut bucket: Option<Bucket> = None;
    let mut current: Option<Run> = None;
    loop {
        if ob.is_closed() {
            return ob.hand_back().await;
        }
        ob.turns.fetch_add(1, Ordering::Relaxed);
        let wake = ob.wake.notified();
        tokio::pin!(wake);
        // Registered before looking, so a change in between is not missed.
        wake.as_mut().enable();
        let Some(b) = weak.upgrade() else { return };
        let poll = ob.tick(b.wall_ms(), b.open_for().is_none()).await;
        let now = b.wall_ms();
        // Count what finished since the last look before deciding the run is over.
        if let Some(r) = current.as_mut() {
            let (d, x) = ob.take_tally();
            r.delivered += d;
            r.dead += x;
        }
        let bucket = bucket.get_or_insert_with(|| Bucket::new(ob.cfg.rate, concurrency, now));
        let not_before = ob.not_before_ms.load(Ordering::Acquire);
        let (queued, next_due) = ob.queue_state();
        let wait = if queued == 0 {
            if let Some(r) = current.take() {
                b.emit(&Event::Outbox {
                    phase: OutboxPhase::Drained,
                    queued: 0,
                    delivered: r.delivered,
                    dead_lettered: r.dead,
                    elapsed: Duration::from_millis(now.saturating_sub(r.started_at_ms)),
                });
            }
            None
        } else if let Some(left) = b.open_for() {
            // No attempt against an open circuit; look again when it may admit a trial.
            if let Some(r) = current
                .as_mut()
                .filter(|r| r.paused_at != Some(r.delivered))
            {
                r.paused_at = Some(r.delivered);
                b.emit(&Event::Outbox {
                    phase: OutboxPhase::Paused,
                    queued: queued as u64,
                    delivered: r.delivered,
                    dead_lettered: r.dead,
                    elapsed: Duration::from_millis(now.saturating_sub(r.started_at_ms)),
                });
            }
            ob.settled.notify_waiters();
            Some(left)
        } else if now < not_before {
            Some(Duration::from_millis(not_before - now))
        } else {
            let n = slots.available_permits().min(bucket.available(now));
            let claimed = if n > 0 { ob.claim(now, n) } else { Vec::new() };
            if !claimed.is_empty() {
                current.get_or_insert_with(|| {
                    b.emit(&Event::Outbox {
                        phase: OutboxPhase::Started,
                        queued: queued as u64,
                        delivered: 0,
                        dead_lettered: 0,
                        elapsed: Duration::ZERO,
                    });
                    Run {
                        started_at_ms: now,
                        delivered: 0,
                        dead: 0,
                        paused_at: None,
                    }
                });
                for m in claimed {
                    bucket.take();
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        ob.release(&m);
                        continue;
                    };
                    let (b, ob) = (b.clone(), ob.clone());
                    tokio::spawn(async move {
                        let _slot = slot;
                        let done = deliver(&b, &ob, m).await;
                        ob.tally(done);
                        ob.wake.notify_one();
                    });
                }
                continue;
            }
            // Nothing to start now: wait for a due write, a token or a free slot (a
            // finished delivery wakes the loop).
            let mut wait = next_due.map(|d| Duration::from_millis(d.saturating_sub(now)));
            if slots.available_permits() > 0 && bucket.available(now) == 0 {
                wait = Some(wait.map_or(bucket.refill_in(), |w| w.min(bucket.refill_in())));
            }
            wait
        };
        drop(b);
        let wait = match (wait, poll) {
            (Some(w), Some(p)) => Some(w.min(p)),
            (w, p) => w.or(p),
        };
        match wait {
            Some(d) => {
                tokio::select! {
                    _ = ob.stop.cancelled() => return ob.hand_back().await,
                    _ = &mut wake => {}
                    _ = tokio::time::sleep(d.max(Duration::from_millis(1))) => {}
                }
            }
            None => {
                tokio::select! {
                    _ = ob.stop.cancelled() => return ob.hand_back().await,
                    _ = &mut wake => {}
                }
            }
        }
    }
}

/// How one delivery ended, for the run's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Done {
    Delivered,
    Dead,
    Again,
}

/// One attempt at delivering `m` (which may retry inside, as a live call would).
async fn deliver(b: &Arc<Breaker>, ob: &Arc<Outbox>, m: Meta) -> Done {
    match ob.begin(&m).await {
        Begin::Go => {}
        // An older write of its key is held by another replica: not an attempt.
        Begin::Wait => {
            let later = b.wall_ms() + WAIT_POLL.as_millis() as u64;
            ob.schedule.lock().reschedule(m.seq, later, m.attempts);
            return Done::Again;
        }
        Begin::Lost => {
            ob.forget(&m);
            return Done::Again;
        }
    }
    let now = b.wall_ms();
    let write = match ob.load(&m).await {
        Ok(w) => w,
        Err(reason) => {
            ob.bury(b, &m, reason, None, None, now).await;
            return Done::Dead;
        }
    };
    if now.saturating_sub(m.created_at_ms) > ob.cfg.max_age.as_millis() as u64 {
        ob.bury(b, &m, "expired", None, None, now).await;
        return Done::Dead;
    }
    let Some(permit) = b.admit() else {
        // Opened since the loop looked: not an attempt, just back in line.
        ob.release(&m);
        return Done::Again;
    };
    let call = Call::new(write.request());
    let out = b.clone().execute(permit, call).await;
    let now = b.wall_ms();
    match out {
        CallOutcome::Ok(s) => {
            ob.delivered(b, &m, &write, s.status, &s.body, now).await;
            Done::Delivered
        }
        // DNAStore answered and refused (a 4xx other than 408/429, or a redirect to another
        // origin): sending it again gets the same answer.
        CallOutcome::Rejected(r) if r.code == Code::Http => {
            let answer = r.body.map(|a| a.to_vec());
            ob.bury(b, &m, "rejected", r.status, answer, now).await;
            Done::Dead
        }
        CallOutcome::Rejected(r) if r.code == Code::Shutdown => {
            ob.release(&m);
            Done::Again
        }
        CallOutcome::Rejected(r) => {
            ob.again(b, &m, r.code, None, now).await;
            Done::Again
        }
        CallOutcome::Fallback(f) => {
            ob.again(b, &m, f.code, f.retry_after, now).await;
            Done::Again
        }
        CallOutcome::Queued(_) => {
            // Deliveries are never durable calls; nothing to do but try again later.
            ob.again(b, &m, Code::Internal, None, now).await;
            Done::Again
        }
    }
}

impl Outbox {
    /// How many writes are queued, and when the next one not yet due is.
    pub(super) fn queue_state(&self) -> (usize, Option<u64>) {
        let s = self.schedule.lock();
        (s.len(), s.next_due_ms())
    }

    pub(super) fn claim(&self, now_ms: u64, max: usize) -> Vec<Meta> {
        self.schedule.lock().claim(now_ms, max)
    }

    pub(super) fn release(&self, m: &Meta) {
        self.schedule.lock().release(m.seq);
        self.store_release(m);
    }

    fn tally(&self, d: Done) {
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
    }

    fn take_tally(&self) -> (u64, u64) {
        (
            self.run_delivered.swap(0, Ordering::Relaxed),
            self.run_dead.swap(0, Ordering::Relaxed),
        )
    }

    /// The stored write, verified; the dead-letter reason otherwise.
    async fn load(&self, m: &Meta) -> Result<Write, &'static str> {
        let Some((blob, mac)) = self.stored(m).await else {
            return Err("unreadable");
        };
        if !Write::verify(&blob, mac.as_deref(), self.secret.as_deref()) {
            return Err("tampered");
        }
        Write::decode(&blob).ok_or("unreadable")
    }

    async fn delivered(
        &self,
        b: &Breaker,
        m: &Meta,
        w: &Write,
        status: u16,
        body: &[u8],
        now_ms: u64,
    ) {
        self.store_delivered(m).await;
        self.schedule.lock().remove(m.seq);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let after = Duration::from_millis(now_ms.saturating_sub(m.created_at_ms));
        if let Some(om) = b.metrics().outbox() {
            om.delivered.inc();
            om.delivery_seconds.observe(after.as_secs_f64());
        }
        self.refresh_gauges(Some(now_ms));
        b.emit(&Event::Delivered {
            id: &m.id,
            status,
            after,
            idempotency_key: &w.idempotency_key,
            body,
        });
    }

    async fn bury(
        &self,
        b: &Breaker,
        m: &Meta,
        reason: &'static str,
        status: Option<u16>,
        answer: Option<Vec<u8>>,
        now_ms: u64,
    ) {
        match self.store_bury(m, reason, status, answer, now_ms).await {
            Some(true) => {}
            // Another replica finished it first.
            Some(false) => return self.forget(m),
            None => {
                // Could not move it: try again later rather than lose or resend it now.
                self.schedule
                    .lock()
                    .reschedule(m.seq, now_ms + 1000, m.attempts);
                return;
            }
        }
        self.schedule.lock().remove(m.seq);
        self.dead.fetch_add(1, Ordering::Relaxed);
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(om) = b.metrics().outbox() {
            om.dead_lettered(reason).inc();
        }
        self.refresh_gauges(Some(now_ms));
        b.emit(&Event::DeadLetter {
            id: &m.id,
            reason,
            status,
        });
    }

    /// Not delivered this time: back in line after a jittered backoff (or DNAStore's
    /// Retry-After, which also pauses the loop).
    async fn again(
        &self,
        b: &Breaker,
        m: &Meta,
        code: Code,
        retry_after: Option<Duration>,
        now_ms: u64,
    ) {
        let attempts = m.attempts + 1;
        let delay = b
            .outbox_backoff(attempts)
            .max(retry_after.unwrap_or_default());
        if let Some(ra) = retry_after {
            let until = now_ms + ra.as_millis() as u64;
            self.not_before_ms.fetch_max(until, Ordering::AcqRel);
        }
        let next = now_ms + delay.as_millis() as u64;
        self.store_again(m, next, attempts, code.as_str()).await;
        self.schedule.lock().reschedule(m.seq, next, attempts);
    }

    /// Resolves when the queue is empty or the circuit is open (`b.open_for`), or the
    /// outbox closes.
    pub async fn drain(&self, b: &Breaker) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.is_closed() || b.open_for().is_some() {
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
