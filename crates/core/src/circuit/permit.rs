//! A permit to make one attempt: a guard whose every end gives back what it holds.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{Circuit, Inner, State};

/// Permission to make one attempt. Results of permits from an earlier state
/// (`generation` changed) are counted but cannot move the state machine.
///
/// A permit is a guard, neither `Copy` nor `Clone`: it ends either in
/// [`Circuit::on_result`](super::Circuit::on_result) (which consumes it) or in its `Drop`, which gives a half-open
/// trial slot back. So every way a call can end (a verdict, an abort, a validation error
/// after admission, a dropped future, a panic unwinding through its owner) returns the
/// slot: a wedged half-open circuit is impossible by construction, not by care at each
/// call site. Permits of a closed circuit hold nothing (no allocation, no atomic).
pub struct Permit {
    pub(super) generation: u64,
    /// The state to give a trial slot back to; `None` for a closed circuit's permit.
    pub(super) trial: Option<Arc<Mutex<Inner>>>,
    /// The circuit that admitted it when that is a route's (`circuitPerRoute`); `None`: the
    /// breaker's own. Carried so that every end of the call records on, and gives back
    /// to, the circuit that admitted it, even one evicted from the registry meanwhile.
    /// `None` costs nothing: route-less calls take no reference.
    pub(super) circuit: Option<Arc<Circuit>>,
}

impl Permit {
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// The route's circuit that admitted it; `None` for the breaker's own circuit.
    pub fn route_circuit(&self) -> Option<&Arc<Circuit>> {
        self.circuit.as_ref()
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation)
            .field("trial", &self.trial.is_some())
            .field("routed", &self.circuit.is_some())
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(inner) = self.trial.take() {
            release_trial(&inner, self.generation);
        }
    }
}

/// A trial that ended without a verdict frees its slot, if its half-open period is current.
fn release_trial(inner: &Mutex<Inner>, generation: u64) {
    let mut g = inner.lock();
    if generation == g.generation {
        if let State::HalfOpen {
            admitted,
            succeeded,
        } = g.state
        {
            g.state = State::HalfOpen {
                admitted: admitted.saturating_sub(1),
                succeeded,
            };
        }
    }
}
