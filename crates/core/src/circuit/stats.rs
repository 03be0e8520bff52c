//! What a circuit reports: [`Stats`] over its rolling window, and the same counts bucket by
//! bucket ([`Circuit::buckets`], opossum's `status.window`).

use std::time::Duration;

use super::Circuit;
use crate::observer::StateKind;
use crate::window::Counts;

/// Counts over the rolling window plus the state, as `stats()` returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub state: StateKind,
    pub fires: u64,
    pub successes: u64,
    pub failures: u64,
    pub timeouts: u64,
    pub client_errors: u64,
    pub rejects: u64,
    pub fallbacks: u64,
    pub retries: u64,
    /// Failure percentage of the calls in the window; `None` while the window holds none
    /// (no sentinel value: an empty window has no rate).
    pub failure_rate: Option<f64>,
    /// Calls in the window slower than `slowCallDurationMs` (0 while it is off).
    pub slow_calls: u64,
    /// Slow-call percentage of the calls in the window; `None` while it holds none.
    pub slow_call_rate: Option<f64>,
    pub consecutive_failures: u32,
    pub trips: u64,
    pub window: Duration,
    /// The bulkhead (filled in by the breaker; `None` without `maxConcurrent`).
    pub bulkhead: Option<BulkheadStats>,
    /// Hedged reads over the window (filled in by the breaker; `None` without `hedgeAfterMs`).
    pub hedges: Option<HedgeStats>,
}

/// Hedges over the rolling window, by result, as `stats()` returns them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HedgeStats {
    pub won: u64,
    pub lost: u64,
    pub skipped: u64,
}

/// The bulkhead's state, as `stats()` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkheadStats {
    pub inflight: u32,
    pub queued: u32,
    /// The current cap: maxConcurrent, or the adaptive limit.
    pub limit: u32,
    /// Calls refused so far (not over the window): no slot and no queue place, and queued
    /// without a slot in time.
    pub rejected_concurrency: u64,
    pub rejected_queue_timeout: u64,
}

/// One bucket of the rolling window: the verdicts and the lock-free counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketCounts {
    pub counts: Counts,
    pub fires: u64,
    pub rejects: u64,
    pub fallbacks: u64,
}

impl Circuit {
    pub fn stats(&self, now: Duration) -> Stats {
        let w = self.clock.at(now);
        let (state, totals, consecutive) = {
            let g = self.inner.lock();
            (g.shown(), g.window.totals(w), g.consecutive_failures)
        };
        Stats {
            state,
            fires: self.fires.total(w),
            successes: totals.successes,
            failures: totals.failures,
            timeouts: totals.timeouts,
            client_errors: totals.client_errors,
            rejects: self.rejects.total(w),
            fallbacks: self.fallbacks.total(w),
            retries: self.retries.total(w),
            failure_rate: (totals.calls() > 0).then(|| totals.failure_percent()),
            slow_calls: totals.slow,
            slow_call_rate: (totals.calls() > 0).then(|| totals.slow_percent()),
            consecutive_failures: consecutive,
            trips: self.trips(),
            window: self.cfg.rolling_count_timeout,
            bulkhead: None,
            hedges: None,
        }
    }

    /// The window's buckets at `now`, the current one first (`rollingCountBuckets` of
    /// them; a bucket no call reached holds zeros).
    pub fn buckets(&self, now: Duration) -> Vec<BucketCounts> {
        let w = self.clock.at(now);
        let counts = self.inner.lock().window.buckets(w);
        let (fires, rejects) = (self.fires.buckets(w), self.rejects.buckets(w));
        let fallbacks = self.fallbacks.buckets(w);
        counts
            .into_iter()
            .enumerate()
            .map(|(i, counts)| BucketCounts {
                counts,
                fires: fires[i],
                rejects: rejects[i],
                fallbacks: fallbacks[i],
            })
            .collect()
    }
}
