//! What the circuit gains to follow a fleet decision (`fleetCircuit`, decided in `fleet/`
//! and applied by the breaker): an open with the fleet's reason and end, a close of a state
//! the fleet opened, and a leased half-open (no trial while the round's leases are all held
//! elsewhere). A circuit no fleet ever touches never runs any of this: its `fleet` note
//! stays `None`, and the only check on its paths is one `Option` in the half-open branch.

use std::sync::Arc;
use std::time::Duration;

use super::{Circuit, Inner, State};
use crate::observer::{FleetNote, StateKind, Transition, TransitionReason};

impl Circuit {
    /// Whether a half-open trial must wait: the state follows the fleet and every lease of
    /// its round is held elsewhere until later than `now`.
    pub(super) fn trials_held(&self, g: &Inner, now: Duration) -> bool {
        g.fleet.is_some() && now < g.trial_hold_until
    }

    /// Whether the state follows a fleet decision (its half-open trials need a lease).
    pub fn follows_fleet(&self) -> bool {
        self.inner.lock().fleet.is_some()
    }

    /// The fleet opened (`until` in clock time; at or before `now`: its round of trials is
    /// on, so half-open). From any state; a circuit already there takes the fleet's end and
    /// note without a transition. Returns whether the state changed.
    pub fn fleet_open(
        &self,
        until: Duration,
        note: Arc<FleetNote>,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) -> bool {
        let mut g = self.inner.lock();
        let new_round = g
            .fleet
            .as_ref()
            .is_none_or(|f| f.generation != note.generation);
        if new_round {
            g.trial_hold_until = Duration::ZERO;
        }
        g.fleet = Some(note);
        if now < until {
            if let State::Open { .. } = g.state {
                g.state = State::Open { until };
                self.publish(&g);
                return false;
            }
            self.open_until(&mut g, until, TransitionReason::Fleet, now, emit);
            return true;
        }
        match g.state {
            State::HalfOpen { .. } => false,
            // Still open locally, but the fleet's open period is over: its round is on.
            State::Open { .. } | State::Closed => {
                let half = State::HalfOpen {
                    admitted: 0,
                    succeeded: 0,
                };
                self.transition(&mut g, half, TransitionReason::Fleet, now, emit);
                true
            }
        }
    }

    /// The fleet closed: a state that follows the fleet closes (its window cleared, as a
    /// trial-success close does); a state of the replica's own (it opened alone) stays.
    /// Either way the open period's growth (`resetTimeoutMax`) starts over.
    /// Returns whether the state changed.
    pub fn fleet_close(
        &self,
        note: Arc<FleetNote>,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) -> bool {
        let mut g = self.inner.lock();
        // The fleet's store recovered: the open period's growth ends on every replica.
        g.failed_trials = 0;
        if g.fleet.is_none() {
            return false;
        }
        g.trial_hold_until = Duration::ZERO;
        if g.state.kind() == StateKind::Closed {
            g.fleet = None;
            return false;
        }
        g.fleet = Some(note);
        self.transition(&mut g, State::Closed, TransitionReason::Fleet, now, emit);
        g.fleet = None;
        g.window.reset();
        true
    }

    /// The fleet is out of reach: the state stays as it is and the circuit decides alone
    /// again (its half-open trials need no lease). No transition.
    pub fn fleet_detach(&self) {
        let mut g = self.inner.lock();
        g.fleet = None;
        g.trial_hold_until = Duration::ZERO;
    }

    /// Every lease of the fleet's round is held elsewhere until `until` (clock time): no
    /// trial before then (the holder's outcome, or its lease's expiry, comes first).
    pub fn hold_trials(&self, until: Duration) {
        self.inner.lock().trial_hold_until = until;
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
