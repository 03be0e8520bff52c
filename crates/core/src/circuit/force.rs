//! Manual control (`breaker.open()`, `close()`, `disable()`, `enable()`, `circuitForce`):
//! a forced state laid over the state machine.
//!
//! While forced, the state machine underneath is frozen: results are counted in the window
//! (so stats and metrics go on) but move nothing, and no trial is admitted. Forced open is
//! mirrored in the lock-free open deadline (`u64::MAX`), so its short-circuit path is the
//! open path's single atomic load; disabled clears that deadline and admits every call with
//! a closed circuit's permit (no allocation). `enable()` hands the state machine back as it
//! was (an open deadline that elapsed meanwhile half-opens at the next call); `close()`
//! closes it with a clean window, as a trial-success close does. A circuit never forced
//! pays one `Option` check in the locked admission path.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{nanos, Circuit, Inner, Permit, State};
pub use crate::observer::Control;
use crate::observer::{StateKind, Transition, TransitionReason};

/// A state an operator holds the circuit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forced {
    /// Open, no trials, until `close()` or `enable()`.
    Open,
    /// Never short-circuits, never trips; outcomes still counted.
    Disabled,
}

impl Forced {
    fn kind(self) -> StateKind {
        match self {
            Forced::Open => StateKind::ForcedOpen,
            Forced::Disabled => StateKind::Disabled,
        }
    }
}

impl Inner {
    /// The state callers see: the forced one, else the state machine's.
    pub(super) fn shown(&self) -> StateKind {
        self.forced.map_or_else(|| self.state.kind(), Forced::kind)
    }
}

impl Circuit {
    /// The forced state, if an operator set one.
    pub fn forced(&self) -> Option<Forced> {
        self.inner.lock().forced
    }

    /// Admission while forced: a closed circuit's permit when disabled, none when open.
    pub(super) fn forced_permit(g: &Inner, f: Forced) -> Option<Permit> {
        (f == Forced::Disabled).then_some(Permit {
            generation: g.generation,
            trial: None,
            circuit: None,
        })
    }

    /// Applies an operator's command. Returns false when it changed nothing (already in
    /// that state). Permits of the state before become stale: their results are counted
    /// but cannot move the state machine.
    pub fn control(&self, c: Control, now: Duration, emit: &mut dyn FnMut(&Transition)) -> bool {
        let mut g = self.inner.lock();
        let from = g.shown();
        let forced = match c {
            Control::Open => Some(Forced::Open),
            Control::Disable => Some(Forced::Disabled),
            Control::Close | Control::Enable => None,
        };
        let close = c == Control::Close && (g.forced.is_some() || g.state != State::Closed);
        if g.forced == forced && !close {
            return false;
        }
        // The counts behind the decision, before a close clears them.
        let totals = g.window.totals(self.clock.at(now));
        let consecutive = g.consecutive_failures;
        if close {
            g.state = State::Closed;
            g.window.reset();
            g.consecutive_failures = 0;
        } else if let State::HalfOpen { .. } = g.state {
            // Trials admitted before are stale now and never give their slots back: the
            // round starts over.
            g.state = State::HalfOpen {
                admitted: 0,
                succeeded: 0,
            };
        }
        // An operator's decision is this replica's own.
        g.fleet = None;
        g.forced = forced;
        let to = g.shown();
        let t = Transition {
            from,
            to,
            reason: TransitionReason::Forced,
            failures: totals.failures,
            calls: totals.calls(),
            failure_percent: totals.failure_percent(),
            slow_calls: totals.slow,
            slow_percent: totals.slow_percent(),
            consecutive_failures: consecutive,
            time_in_previous: now.saturating_sub(g.entered),
            trips: self.trips(),
            fleet: None,
        };
        g.entered = now;
        g.generation += 1;
        self.publish(&g);
        drop(g);
        if forced == Some(Forced::Open) {
            // Calls sleeping before a retry settle now.
            self.opened.notify_waiters();
        }
        emit(&t);
        true
    }

    /// Mirrors the shown state in the lock-free fields.
    pub(super) fn publish(&self, g: &Inner) {
        let until = match (g.forced, g.state) {
            (Some(Forced::Open), _) => u64::MAX,
            (Some(Forced::Disabled), _) => 0,
            (None, State::Open { until }) => nanos(until).max(1),
            (None, _) => 0,
        };
        self.open_until.store(until, Ordering::Release);
        self.state.store(g.shown() as u8, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "force_tests.rs"]
mod tests;
