//! The bulkhead: at most `limit` calls in flight to DNAStore per breaker, a short FIFO wait
//! for a slot (`maxQueued`, `queueTimeoutMs`), and with `concurrencyLimit: 'adaptive'` a
//! limit that follows measured latency (`gradient.rs`) through a sampling window
//! (`window.rs`).
//!
//! Slots come from a `tokio::sync::Semaphore`: it is FIFO (a released permit goes to the
//! oldest waiter, so `try_acquire` never barges past the queue), its `acquire` future is
//! cancel-safe (a waiter dropped by its timeout, its AbortSignal or its deadline leaves the
//! queue, and a permit assigned to it in the same instant is given back), and the fast path
//! is one compare-and-swap. A semaphore cannot shrink below the permits it has handed out,
//! so a lower limit is a *debt*: `forget_permits` takes what is free now, and each slot
//! returned while debt remains is forgotten instead of released. A higher limit first
//! cancels debt, then adds permits. Invariant: free + held - debt = limit. A hand-written
//! FIFO (a parking_lot deque of wakers) would need its own cancel-safe hand-off, which is
//! exactly what tokio's semaphore already gets right.
//!
//! A [`Slot`] is a guard: every way a call ends (an answer, a failure, an abort, a
//! deadline, a panic, a future dropped before its first poll, which never took one)
//! returns it by its `Drop`.

mod gradient;
mod metrics;
mod window;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::{LimitConfig, LimitKind};
pub use gradient::Gradient;
pub use metrics::LimitMetrics;
use window::SampleWindow;

/// Why the bulkhead refused a call (`dnastore_concurrency_rejections_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shed {
    /// Every slot taken and no queue place left.
    Concurrency,
    /// Queued, but no slot came within `queueTimeoutMs` (or the call's deadline).
    QueueTimeout,
}

impl Shed {
    pub const ALL: [Shed; 2] = [Shed::Concurrency, Shed::QueueTimeout];

    pub fn label(self) -> &'static str {
        match self {
            Shed::Concurrency => "concurrency",
            Shed::QueueTimeout => "queue_timeout",
        }
    }

    /// The fallback's message detail.
    pub fn describe(self) -> &'static str {
        match self {
            Shed::Concurrency => "maxConcurrent calls in flight and no queue place",
            Shed::QueueTimeout => "no slot within queueTimeoutMs",
        }
    }
}

/// One breaker's bulkhead.
pub struct Limiter {
    sem: Semaphore,
    max_queued: u32,
    queue_timeout: Duration,
    limit: AtomicU32,
    debt: AtomicU32,
    inflight: AtomicU32,
    queued: AtomicU32,
    /// The adaptive limit; `None` for a fixed cap.
    adaptive: Option<Mutex<Adaptive>>,
    rejected: [AtomicU64; 2],
    /// Its series (`None` for a limiter outside a breaker: tests, the bench).
    metrics: Option<LimitMetrics>,
}

/// The adaptive limit's state: the open sampling window and Gradient2.
struct Adaptive {
    window: SampleWindow,
    gradient: Gradient,
}

/// A taken slot; returned (or forgotten against a debt) on drop.
pub struct Slot<'a> {
    limiter: &'a Limiter,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let l = self.limiter;
        l.inflight.fetch_sub(1, Ordering::Relaxed);
        if let Some(p) = self.permit.take() {
            let paid = l
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
                .is_ok();
            if paid {
                p.forget();
            }
        }
    }
}

impl Slot<'_> {
    /// One attempt's latency, for the adaptive limit (nothing for a fixed cap).
    pub fn sample(&self, latency: Duration) {
        self.limiter.sample(latency);
    }
}

/// Counts a waiter in `queued` for as long as it waits.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limiter {
    /// A limiter that counts into `metrics`.
    pub fn with_metrics(cfg: &LimitConfig, metrics: LimitMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::new(cfg)
        }
    }

    pub fn new(cfg: &LimitConfig) -> Self {
        let max = cfg.max_concurrent;
        Self {
            sem: Semaphore::new(max as usize),
            max_queued: cfg.max_queued,
            queue_timeout: cfg.queue_timeout,
            limit: AtomicU32::new(max),
            debt: AtomicU32::new(0),
            inflight: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            adaptive: match cfg.kind {
                LimitKind::Fixed => None,
                LimitKind::Adaptive { min } => Some(Mutex::new(Adaptive {
                    window: SampleWindow::default(),
                    gradient: Gradient::new(min, max),
                })),
            },
            rejected: [AtomicU64::new(0), AtomicU64::new(0)],
            metrics: None,
        }
    }

    /// A slot now, or after a FIFO wait bounded by `queueTimeoutMs` and `deadline_at`.
    /// Cancel-safe: dropping the future leaves the queue.
    pub async fn acquire(&self, deadline_at: Instant) -> Result<Slot<'_>, Shed> {
        if let Ok(p) = self.sem.try_acquire() {
            return Ok(self.slot(p));
        }
        let queued = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.max_queued).then_some(q + 1)
            });
        if queued.is_err() {
            return Err(self.shed(Shed::Concurrency));
        }
        let _waiting = Waiting(&self.queued);
        let until = deadline_at.min(Instant::now() + self.queue_timeout);
        match tokio::time::timeout_at(until, self.sem.acquire()).await {
            Ok(Ok(p)) => Ok(self.slot(p)),
            // The semaphore is never closed; treated as full if it were.
            Ok(Err(_)) => Err(self.shed(Shed::Concurrency)),
            Err(_) => Err(self.shed(Shed::QueueTimeout)),
        }
    }

    /// A slot only if one is free now: never queued, never counted as a rejection. Taken
    /// by a hedge (`hedge/`), which is skipped without one. tokio's semaphore hands released
    /// permits to its waiters first, so while calls wait for a slot there is none free here:
    /// a hedge never passes a queued call.
    pub fn try_acquire_now(&self) -> Option<Slot<'_>> {
        self.sem.try_acquire().ok().map(|p| self.slot(p))
    }

    fn slot<'a>(&'a self, p: SemaphorePermit<'a>) -> Slot<'a> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        Slot {
            limiter: self,
            permit: Some(p),
        }
    }

    fn shed(&self, why: Shed) -> Shed {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.rejected(why);
        }
        why
    }

    fn sample(&self, latency: Duration) {
        let Some(a) = &self.adaptive else { return };
        let (now, inflight) = (Instant::now(), self.inflight());
        let mut a = a.lock();
        let Some(w) = a.window.add(latency, inflight, now) else {
            return;
        };
        let old = a.gradient.limit();
        let new = a.gradient.update(w.median, w.samples, w.max_inflight);
        // Resized under the limiter's lock, so resizes never interleave.
        if new > old {
            let grow = new - old;
            let mut paid = 0;
            let _ = self
                .debt
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    paid = d.min(grow);
                    Some(d - paid)
                });
            self.sem.add_permits((grow - paid) as usize);
        } else if new < old {
            let shrink = old - new;
            let taken = self.sem.forget_permits(shrink as usize) as u32;
            self.debt.fetch_add(shrink - taken, Ordering::AcqRel);
        }
        self.limit.store(new, Ordering::Relaxed);
    }

    /// Calls holding a slot.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Calls waiting for one.
    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    /// The current cap (maxConcurrent when fixed).
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Sets the gauges (at scrape time).
    pub fn refresh_gauges(&self) {
        if let Some(m) = &self.metrics {
            m.set(self.inflight(), self.queued(), self.limit());
        }
    }

    /// Calls refused so far for `why`.
    pub fn rejected(&self, why: Shed) -> u64 {
        self.rejected[why as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
