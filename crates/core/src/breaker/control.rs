//! Manual control of the circuit (`breaker.open()`, `close()`, `disable()`, `enable()`, and
//! `circuitForce` at startup): the circuit's forced state (`circuit/force.rs`) with its
//! transition told to every observer (log, events, the state gauge), and the outbox's
//! delivery loop woken so that a close or a disable delivers queued writes at once. With
//! the fleet circuit on, a command is every replica's (`fleet/force.rs`).

use std::sync::atomic::Ordering;

use super::Breaker;
use crate::circuit::{Control, Forced};
use crate::config::CircuitForce;
use crate::observer::Event;

impl Breaker {
    /// Applies an operator's command, and with the fleet circuit tells every replica;
    /// false when this replica's circuit was already in that state.
    pub fn control(&self, c: Control) -> bool {
        let changed = self.apply_control(c);
        if let Some(f) = &self.fleet {
            f.control(c);
        }
        changed
    }

    /// Applies a command to this replica's circuit only (`circuitForce`, or one the fleet
    /// carried here).
    pub(super) fn apply_control(&self, c: Control) -> bool {
        // Every route's circuit too (`circuitPerRoute`): the answer is the breaker's own.
        self.control_routes(c);
        let changed = self
            .circuit
            .control(c, self.now(), &mut |t| self.emit(&Event::Transition(t)));
        if changed {
            if let Some(o) = &self.outbox {
                o.wake();
            }
        }
        changed
    }

    /// The forced state, if an operator set one.
    pub fn forced(&self) -> Option<Forced> {
        self.circuit.forced()
    }

    /// `circuitForce`, once per breaker (not per handle joining it), after the opener's
    /// observer is subscribed so the transition is logged.
    pub(super) fn apply_circuit_force(&self) {
        if self.forced_at_start.swap(true, Ordering::AcqRel) {
            return;
        }
        let c = match self.config.circuit_force {
            None => return,
            Some(CircuitForce::Open) => Control::Open,
            Some(CircuitForce::Disabled) => Control::Disable,
        };
        // This replica's setting: not published to the fleet.
        self.apply_control(c);
    }
}

#[cfg(test)]
#[path = "tests_control.rs"]
mod tests;
