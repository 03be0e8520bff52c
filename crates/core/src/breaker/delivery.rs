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
//!
//! It lives here, with the breaker, because each delivery is a call of this breaker
//! (admitted and executed like a live one); the outbox keeps the queue, its pacing state
//! and its counts, and answers what the loop asks (`outbox/driven.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Breaker, Call};
use crate::error::Code;
use crate::observer::{DeadReason, Event, OutboxPhase};
use crate::outbox::fleet::{Begin, WAIT_POLL};
use crate::outbox::{Done, Meta, Outbox, Write};
use crate::outcome::CallOutcome;

/// Starts `b`'s delivery loop on `rt` (the breaker must have an outbox).
pub(super) fn spawn_delivery(b: &Arc<Breaker>, ob: &Arc<Outbox>, rt: &tokio::runtime::Handle) {
    rt.spawn(run(Arc::downgrade(b), ob.clone()));
}

impl Breaker {
    /// Resolves when the outbox's queue is empty or the circuit is open, or the outbox
    /// closes (at once without an outbox).
    pub async fn drain_outbox(&self) {
        if let Some(ob) = &self.outbox {
            ob.drain(&|| self.open_for().is_some()).await;
        }
    }
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
    let concurrency = ob.config().concurrency.max(1);
    let slots = Arc::new(Semaphore::new(concurrency as usize));
    let mut bucket: Option<Bucket> = None;
    let mut current: Option<Run> = None;
    loop {
        if ob.is_closed() {
            return ob.hand_back().await;
        }
        ob.count_turn();
        let wake = ob.woken();
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
        let bucket = bucket.get_or_insert_with(|| Bucket::new(ob.config().rate, concurrency, now));
        let not_before = ob.not_before_ms();
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
            ob.notify_settled();
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
                        ob.finished(done);
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
                    _ = ob.stopped() => return ob.hand_back().await,
                    _ = &mut wake => {}
                    _ = tokio::time::sleep(d.max(Duration::from_millis(1))) => {}
                }
            }
            None => {
                tokio::select! {
                    _ = ob.stopped() => return ob.hand_back().await,
                    _ = &mut wake => {}
                }
            }
        }
    }
}

/// One attempt at delivering `m` (which may retry inside, as a live call would).
async fn deliver(b: &Arc<Breaker>, ob: &Arc<Outbox>, m: Meta) -> Done {
    match ob.begin(&m).await {
        Begin::Go => {}
        // An older write of its key is held by another replica: not an attempt.
        Begin::Wait => {
            ob.wait_turn(&m, b.wall_ms() + WAIT_POLL.as_millis() as u64);
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
            bury(b, ob, &m, m.attempts, reason, None, None, now).await;
            return Done::Dead;
        }
    };
    if ob.expired(&m, now) {
        bury(b, ob, &m, m.attempts, DeadReason::Expired, None, None, now).await;
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
            delivered(b, ob, &m, &write, s.status, &s.body, now).await;
            Done::Delivered
        }
        // DNAStore answered and refused (a 4xx other than 408/429, or a redirect to another
        // origin): sending it again gets the same answer.
        CallOutcome::Rejected(r) if r.code == Code::Http => {
            let answer = r.body.map(|a| a.to_vec());
            // This delivery was an attempt: counted, as `again` counts a failed one.
            let tried = m.attempts + 1;
            bury(
                b,
                ob,
                &m,
                tried,
                DeadReason::Rejected,
                r.status,
                answer,
                now,
            )
            .await;
            Done::Dead
        }
        CallOutcome::Rejected(r) if r.code == Code::Shutdown => {
            ob.release(&m);
            Done::Again
        }
        CallOutcome::Rejected(r) => {
            again(b, ob, &m, r.code, None, now).await;
            Done::Again
        }
        CallOutcome::Fallback(f) => {
            again(b, ob, &m, f.code, f.retry_after, now).await;
            Done::Again
        }
        CallOutcome::Queued(_) => {
            // Deliveries are never durable calls; nothing to do but try again later.
            again(b, ob, &m, Code::Internal, None, now).await;
            Done::Again
        }
    }
}

/// A delivered write: counted by the outbox, reported as an event.
async fn delivered(
    b: &Breaker,
    ob: &Outbox,
    m: &Meta,
    w: &Write,
    status: u16,
    body: &[u8],
    now_ms: u64,
) {
    let after = ob.delivered(m, now_ms).await;
    b.emit(&Event::Delivered {
        id: &m.id,
        status,
        after,
        idempotency_key: &w.idempotency_key,
        body,
    });
}

/// A write moved to the dead letters: counted by the outbox, reported as an event (unless
/// another replica finished it first, or it could not be moved yet).
#[allow(clippy::too_many_arguments)]
async fn bury(
    b: &Breaker,
    ob: &Outbox,
    m: &Meta,
    attempts: u32,
    reason: DeadReason,
    status: Option<u16>,
    answer: Option<Vec<u8>>,
    now_ms: u64,
) {
    if ob.bury(m, attempts, reason, status, answer, now_ms).await {
        b.emit(&Event::DeadLetter {
            id: &m.id,
            reason,
            status,
        });
    }
}

/// Not delivered this time: back in line after the breaker's jittered backoff from
/// retryBaseMs up to outboxRetryMaxMs (or DNAStore's Retry-After).
async fn again(
    b: &Breaker,
    ob: &Outbox,
    m: &Meta,
    code: Code,
    retry_after: Option<Duration>,
    now_ms: u64,
) {
    let delay = b.outbox_backoff(m.attempts + 1);
    ob.again(m, delay, code.as_str(), retry_after, now_ms).await;
}
