//! Per-route circuits in the call path (`circuitPerRoute`): a call that names its route is
//! admitted on that route's circuit (`circuit/per_route.rs`), and its permit carries the
//! circuit, so every end of the call (a verdict, a retry's new permit, a coalesced
//! follower's own call, a hedge's admission, an abort, a panic, a dropped future) records
//! on, or gives back to, the circuit that admitted it. Calls without a route, and every
//! call when the option is off, use the breaker's circuit: their permit carries nothing.
//!
//! A route's circuit is this replica's own, whatever `fleetCircuit` says: only the
//! breaker's circuit follows the fleet. Its transitions are told as
//! [`Event::RouteTransition`] (never moving the breaker's state gauge or `state`). The
//! fire/reject/fallback/retry counts of `stats()` stay the breaker's, all routes together.

use super::*;
use crate::circuit::{Control, RouteCircuits};
use crate::observer::Transition;

impl Breaker {
    /// Synchronous admission of a call naming `route` (a template, see
    /// [`crate::text::route_template`]): on the route's circuit with `circuitPerRoute`,
    /// else exactly [`Breaker::admit`].
    pub fn admit_route(&self, route: Option<&str>) -> Option<Permit> {
        let Some((route, circuit)) = self.route_circuit(route) else {
            return self.admit();
        };
        let now = self.now();
        self.emit(&Event::Fire);
        let p = RouteCircuits::acquire(&circuit, now, &mut |t| self.emit_route(route, t));
        match p {
            Some(_) => self.circuit.record_fire(now),
            None => self.record_short_circuit(now),
        }
        p
    }

    /// Whether admission depends on the call's route (`circuitPerRoute` on): the binding's
    /// open-circuit shortcut must not answer a routed call from the breaker's circuit.
    pub fn routes_circuits(&self) -> bool {
        self.routes.is_some()
    }

    /// The circuit of `route` (made if new) when `circuitPerRoute` is on; `None`: the
    /// breaker's circuit admits it (no route, the option off, or every one of the
    /// `maxRoutes` circuits not closed).
    fn route_circuit<'r>(&self, route: Option<&'r str>) -> Option<(&'r str, Arc<Circuit>)> {
        let (routes, route) = (self.routes.as_ref()?, route?);
        let found = routes.lookup(route, self.now());
        if let Some(evicted) = found.evicted {
            self.metrics.events.remove_route_state(&evicted);
        }
        let circuit = found.circuit?;
        if found.created {
            // Its series starts with the circuit (closed, or forced as the breaker is), not
            // at its first transition: a dashboard sees every route the breaker guards.
            self.metrics.events.show_route_state(route, circuit.state());
        }
        Some((route, circuit))
    }

    /// A new permit for another attempt of the call `permit_circuit` admitted (a retry,
    /// a coalesced follower's own call): from the same circuit.
    pub(super) fn reacquire(
        &self,
        routed: Option<&Arc<Circuit>>,
        route: Option<&str>,
    ) -> Option<Permit> {
        let now = self.now();
        match (routed, route) {
            (Some(c), Some(route)) => {
                RouteCircuits::acquire(c, now, &mut |t| self.emit_route(route, t))
            }
            _ => self
                .circuit
                .try_acquire(now, &mut |t| self.emit(&Event::Transition(t))),
        }
    }

    /// A coalesced follower's own call, admitted as a new call of its route.
    pub(super) fn acquire_for(&self, route: Option<&str>) -> Option<Permit> {
        match self.route_circuit(route) {
            Some((route, c)) => {
                RouteCircuits::acquire(&c, self.now(), &mut |t| self.emit_route(route, t))
            }
            None => self.reacquire(None, None),
        }
    }

    /// The circuit that admitted `permit`.
    pub(super) fn circuit_of<'a>(&'a self, routed: Option<&'a Arc<Circuit>>) -> &'a Circuit {
        routed.map_or(&self.circuit, |c| c)
    }

    /// Tells a transition of the circuit that admitted a call: a route's, or the breaker's.
    pub(super) fn emit_for(&self, routed: bool, route: Option<&str>, t: &Transition) {
        match route.filter(|_| routed) {
            Some(route) => self.emit_route(route, t),
            None => self.emit(&Event::Transition(t)),
        }
    }

    fn emit_route(&self, route: &str, t: &Transition) {
        self.emit(&Event::RouteTransition {
            route,
            transition: t,
        });
    }

    /// The state of `route`'s own circuit; `None` when it has none (the option off, never
    /// used, or evicted while closed): its calls would be admitted by a new closed one,
    /// or by the breaker's circuit when every route's circuit is not closed.
    pub fn state_of(&self, route: &str) -> Option<StateKind> {
        self.routes.as_ref()?.state_of(route)
    }

    /// An operator's command on every route's circuit (`control.rs`).
    pub(super) fn control_routes(&self, c: Control) {
        if let Some(r) = &self.routes {
            r.control(c, self.now(), &mut |route, t| self.emit_route(route, t));
        }
    }
}
