//! What one call did, for a tracing span: its attempts and the retries between them.
//! Only recorded for calls that ask (the facade does when an OpenTelemetry tracer provider
//! is registered): the events stream has the same retries, but for the whole breaker,
//! and a span needs its own call's.

use std::time::Duration;

use parking_lot::Mutex;

use crate::error::FailureKind;

/// One retry: after attempt `attempt` failed with `reason`, the next one waited `delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryNote {
    pub attempt: u32,
    pub delay: Duration,
    pub reason: FailureKind,
}

/// A call's record, filled in by the attempt loop.
#[derive(Debug, Default)]
pub struct CallTrace {
    inner: Mutex<(u32, Vec<RetryNote>)>,
}

impl CallTrace {
    pub(crate) fn attempt(&self) {
        self.inner.lock().0 += 1;
    }

    pub(crate) fn retry(&self, note: RetryNote) {
        self.inner.lock().1.push(note);
    }

    /// Attempts this call sent (0: it was answered without one of its own: short-circuited,
    /// from the cache, or by an identical call in flight) and its retries.
    pub fn take(&self) -> (u32, Vec<RetryNote>) {
        std::mem::take(&mut *self.inner.lock())
    }
}
