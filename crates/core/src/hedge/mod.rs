//! Hedged reads: a GET or HEAD attempt that has not answered after `hedgeAfterMs` is sent
//! once more (up to `hedgeMax` extra copies, each a delay after the one before); the first
//! answer wins and every other copy is cancelled at once (its connection dropped, its body
//! never read). It cuts the tail a slow moment of DNAStore gives one request (a GC pause, a
//! cold shard, a lost packet) for a few percent more requests.
//!
//! This module owns the policy: when a hedge is due ([`Hedger::delay`]: a fixed delay, or
//! `'auto'`, the recent p95, `auto.rs`), the race of the copies (`race.rs`), and the counts
//! (`dnastore_hedges_total{result}`, `stats().hedges`). The breaker's attempt loop runs it
//! (`breaker/hedged.rs`) and decides what a hedge may take. How a hedged attempt fits the
//! rest, decided once here:
//!
//! - **Only reads.** GET and HEAD ([`Hedger::hedges`]); a write is never hedged, durable or
//!   not, with an Idempotency-Key or not: a second copy of a write is a second write.
//! - **A hedge group is one attempt.** The circuit hears one verdict for it (the winner's,
//!   or, when every copy failed, the failure that says most), the call's `attempt` count and
//!   its retries count groups, a copy that fails while another runs fails nothing, and a
//!   retry after a failed group is a new group (with its own hedges).
//! - **Time.** The per-attempt `timeout` bounds the whole group from its first copy (a
//!   hedge does not extend it), inside the call's `deadline`; when it runs out every copy is
//!   dropped and the attempt fails with ETIMEDOUT. The group's latency (first copy sent to
//!   the answer, what the caller waited) is the one the circuit's slow-call rule, the
//!   request-duration histogram and the adaptive limit's sample see; one sample per group,
//!   as one per attempt without hedging.
//! - **Never more load in an incident.** A hedge is sent only when, at the moment it is
//!   due, the circuit is closed (a half-open trial is never hedged), a bulkhead slot is free
//!   now (a hedge takes a slot of its own, without queueing: `maxConcurrent` bounds every
//!   request in flight, hedges included, and a hedge never passes a queued call), and the
//!   retry budget (`retryBudgetPercent`, shared with retries) grants one. Otherwise it is
//!   skipped (counted, with why) and the attempt goes on with the copies it has.
//! - **Coalescing.** Followers of an identical GET wait for the leader's answer; only the
//!   leader's request is hedged.
//! - **Last-known-good.** Only the winner's body is cached (a cancelled copy has none).
//! - **Inline I/O.** A lone call running on its JS thread's runtime races its copies there
//!   (timers and connections of that runtime), as any other call.
//!
//! The hot path of a breaker without hedging: one `Option` test per attempt.

mod auto;
mod metrics;
mod race;

use std::time::Duration;

use http::Method;

use crate::observer::HedgeResult;
use crate::window::AtomicWindow;

pub use auto::{FLOOR as AUTO_FLOOR, MIN_SAMPLES as AUTO_MIN_SAMPLES, P95};
pub use metrics::HedgeMetrics;
pub use race::{race, Raced, Settles};

enum Delay {
    Fixed(Duration),
    Auto(P95),
}

/// One breaker's hedging policy and counts. Built by the breaker from its configuration
/// (`hedgeAfterMs`, `hedgeMax`), given as plain values.
pub struct Hedger {
    delay: Delay,
    max: u32,
    /// By `HedgeResult as usize`, over the circuit's rolling window (`stats().hedges`).
    window: [AtomicWindow; 3],
    metrics: HedgeMetrics,
}

impl Hedger {
    /// `fixed`: the delay, or `None` for `'auto'`; `max`: extra copies at most; `window`
    /// and `buckets`: the circuit's rolling window, for `stats()`.
    pub fn new(
        fixed: Option<Duration>,
        max: u32,
        window: Duration,
        buckets: u32,
        metrics: HedgeMetrics,
    ) -> Self {
        Self {
            delay: match fixed {
                Some(d) => Delay::Fixed(d),
                None => Delay::Auto(P95::new()),
            },
            max,
            window: std::array::from_fn(|_| AtomicWindow::new(window, buckets)),
            metrics,
        }
    }

    /// Whether requests of `method` are hedged: reads only.
    pub fn hedges(method: &Method) -> bool {
        method == Method::GET || method == Method::HEAD
    }

    /// When an attempt starting at `now` (the breaker's clock) sends its first hedge;
    /// `None`: not this attempt (`'auto'` before its window holds enough samples).
    pub fn delay(&self, now: Duration) -> Option<Duration> {
        match &self.delay {
            Delay::Fixed(d) => Some(*d),
            Delay::Auto(p) => p.delay(now),
        }
    }

    /// Extra copies of one attempt at most.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// A copy's latency (or its age when cancelled) for `'auto'`; nothing for a fixed delay.
    pub fn sample(&self, now: Duration, latency: Duration) {
        if let Delay::Auto(p) = &self.delay {
            p.add(now, latency);
        }
    }

    /// Counts one hedge; `window_now`: the circuit's window time.
    pub fn count(&self, window_now: Duration, result: HedgeResult) {
        self.window[result as usize].add(window_now, 1);
        self.metrics.count(result);
    }

    /// Hedges with `result` over the rolling window at `window_now`.
    pub fn total(&self, window_now: Duration, result: HedgeResult) -> u64 {
        self.window[result as usize].total(window_now)
    }
}

#[cfg(test)]
mod tests;
