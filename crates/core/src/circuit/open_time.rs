//! How long the circuit stays open, and how long a half-open round may take.
//!
//! - `resetTimeoutMax`: each failed trial in a row doubles the open period (resilience4j's
//!   `waitIntervalFunctionInOpenState`, Polly's `BreakDurationGenerator`), with jitter so
//!   replicas that failed together do not probe together, up to the cap; the first trip
//!   and every trip after a close open for `resetTimeout`.
//! - Retry-After: a trip or a failed trial whose answer said `Retry-After` (503, 429) stays
//!   open at least that long (capped by `retryAfterMaxMs` by the caller).
//! - `halfOpenMaxWaitMs`: a round of trials not decided within it (trials hanging until
//!   their timeout) re-opens, checked when a call asks to be let through.
//!
//! All off by default: the open period is `resetTimeout` and nothing here runs on the call
//! path but one comparison in the locked half-open branch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{nanos, Circuit, Inner, State};
use crate::config::Config;
use crate::rng::Rng;

/// The open-period settings of a circuit (off by default).
#[derive(Clone, Default)]
pub struct OpenTime {
    /// The longest open period; at or below `resetTimeout`: no growth.
    pub reset_timeout_max: Duration,
    /// A half-open round undecided this long re-opens; `None`: no bound.
    pub half_open_max_wait: Option<Duration>,
    /// The jitter's randomness (injected); without it no jitter.
    pub rng: Option<Arc<dyn Rng>>,
}

impl std::fmt::Debug for OpenTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTime")
            .field("reset_timeout_max", &self.reset_timeout_max)
            .field("half_open_max_wait", &self.half_open_max_wait)
            .finish()
    }
}

impl OpenTime {
    pub fn from_config(c: &Config, rng: Arc<dyn Rng>) -> Self {
        Self {
            reset_timeout_max: c.reset_timeout_max,
            half_open_max_wait: c.half_open_max_wait,
            rng: Some(rng),
        }
    }
}

impl Circuit {
    /// Sets the open-period rules (the breaker's build; tests).
    pub fn with_open_time(mut self, t: OpenTime) -> Self {
        self.open_time = t;
        self
    }

    /// The open period after `failed` failed trials in a row: resetTimeout, doubled per
    /// failed trial up to resetTimeoutMax, then jittered to between half and all of it
    /// (never below resetTimeout).
    pub(super) fn open_period(&self, failed: u32) -> Duration {
        let base = self.cfg.reset_timeout;
        let max = self.open_time.reset_timeout_max;
        if failed == 0 || max <= base {
            return base;
        }
        let grown = base.saturating_mul(1u32 << failed.min(31)).min(max);
        let jitter = self
            .open_time
            .rng
            .as_ref()
            .map_or(1.0, |r| 0.5 + r.next_f64() / 2.0);
        grown.mul_f64(jitter).max(base)
    }

    /// Failed trials in a row, counting the open being decided from `g`'s state now.
    pub(super) fn failed_trials(g: &mut Inner) -> u32 {
        g.failed_trials = match g.state {
            State::HalfOpen { .. } => g.failed_trials.saturating_add(1),
            _ => 0,
        };
        g.failed_trials
    }

    /// What the state machine chose when it last opened, for the fleet's decision: the
    /// open period left from `now` and the failed trials in a row behind it. `None` when
    /// not open, or while an operator forces a state (a forced open is no period).
    pub fn chosen_open(&self, now: Duration) -> Option<(Duration, u32)> {
        let g = self.inner.lock();
        match g.state {
            State::Open { until } if g.forced.is_none() => {
                Some((until.saturating_sub(now), g.failed_trials))
            }
            _ => None,
        }
    }

    /// Takes the fleet's failed trials in a row (`fleetCircuit`): the next failed trial,
    /// whichever replica's it is, grows the open period from there; a fleet's close or
    /// its first open (0) ends the growth on every replica.
    pub fn fleet_failed_trials(&self, n: u32) {
        self.inner.lock().failed_trials = n;
    }

    /// The open circuit stays open at least `at_least` from `now` (the Retry-After of the
    /// answer that opened it). No effect unless open, or while an operator forces a state.
    pub fn hold_open_for(&self, at_least: Duration, now: Duration) {
        let mut g = self.inner.lock();
        let State::Open { until } = g.state else {
            return;
        };
        let want = now + at_least;
        if want <= until {
            return;
        }
        g.state = State::Open { until: want };
        if g.forced.is_none() {
            self.open_until.store(nanos(want).max(1), Ordering::Release);
        }
    }

    /// Whether a half-open round entered at `g.entered` is undecided past its bound.
    pub(super) fn round_expired(&self, g: &Inner, now: Duration) -> bool {
        self.open_time
            .half_open_max_wait
            .is_some_and(|w| now.saturating_sub(g.entered) >= w)
    }
}

#[cfg(test)]
#[path = "open_time_tests.rs"]
mod tests;
