//! What one call did, for a tracing span: its attempts and the retries between them.
//! Only recorded for calls that ask (the facade does when an OpenTelemetry tracer provider
//! is registered): the events stream has the same retries, but for the whole breaker,
//! and a span needs its own call's.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::error::FailureKind;
use crate::observer::{HedgeResult, HedgeSkip};

/// One retry: after attempt `attempt` failed with `reason`, the next one waited `delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryNote {
    pub attempt: u32,
    pub delay: Duration,
    pub reason: FailureKind,
    /// When the retry was decided, from the start of the call's first attempt (so a span
    /// event can carry its real time).
    pub at: Duration,
}

/// One hedge of a read's attempt (`hedge/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HedgeNote {
    /// The attempt it hedged (1-based).
    pub attempt: u32,
    pub result: HedgeResult,
    /// When it was sent (or due, when skipped), from the start of the call's first attempt.
    pub at: Duration,
    /// Why it was not sent (skipped only).
    pub skip: Option<HedgeSkip>,
}

#[derive(Debug, Default)]
struct Record {
    attempts: u32,
    retries: Vec<RetryNote>,
    hedges: Vec<HedgeNote>,
    first: Option<Instant>,
    /// When the latest attempt began.
    latest: Option<Instant>,
    status: Option<u16>,
}

/// What a traced call did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TraceSummary {
    /// Attempts this call sent (0: answered without one of its own: short-circuited, from
    /// the cache, or by an identical call in flight).
    pub attempts: u32,
    pub retries: Vec<RetryNote>,
    /// Hedges of its attempts, in the order they were sent (or due).
    pub hedges: Vec<HedgeNote>,
    /// The status of the last attempt that got an answer (a 503 that ended in a fallback).
    pub last_status: Option<u16>,
}

/// A call's record, filled in by the attempt loop.
#[derive(Debug, Default)]
pub struct CallTrace {
    inner: Mutex<Record>,
}

impl CallTrace {
    pub(crate) fn attempt(&self) {
        let mut r = self.inner.lock();
        r.attempts += 1;
        let now = Instant::now();
        r.first.get_or_insert(now);
        r.latest = Some(now);
    }

    /// Notes a retry (its `at` is filled in here).
    pub(crate) fn retry(&self, attempt: u32, delay: Duration, reason: FailureKind) {
        let mut r = self.inner.lock();
        let at = r.first.map(|f| f.elapsed()).unwrap_or_default();
        r.retries.push(RetryNote {
            attempt,
            delay,
            reason,
            at,
        });
    }

    /// A hedge of attempt `attempt`, sent (or due) `after` that attempt started.
    pub(crate) fn hedge(
        &self,
        attempt: u32,
        result: HedgeResult,
        after: Duration,
        skip: Option<HedgeSkip>,
    ) {
        let mut r = self.inner.lock();
        // From the call's first attempt: where this attempt began, plus `after`.
        let began = match (r.first, r.latest) {
            (Some(f), Some(l)) => l.saturating_duration_since(f),
            _ => Duration::ZERO,
        };
        r.hedges.push(HedgeNote {
            attempt,
            result,
            at: began + after,
            skip,
        });
    }

    /// An attempt got an answer with this status.
    pub(crate) fn status(&self, status: u16) {
        self.inner.lock().status = Some(status);
    }

    pub fn take(&self) -> TraceSummary {
        let r = std::mem::take(&mut *self.inner.lock());
        TraceSummary {
            attempts: r.attempts,
            retries: r.retries,
            hedges: r.hedges,
            last_status: r.status,
        }
    }
}
