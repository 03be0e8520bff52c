//! Per-route circuits (`circuitPerRoute`, issue 30 item 3): one circuit per route template,
//! at most `maxRoutes` of them, the least recently used evicted to make room, never one
//! that is not closed (an open, half-open or forced circuit keeps its state until it
//! closes) nor one with a call in flight. When none can be evicted, a new route gets none:
//! its calls use the breaker's circuit.
//!
//! The breaker admits a routed call on its route's circuit ([`RouteCircuits::acquire`]):
//! the permit carries that circuit, so the call's every end records on it and gives its
//! trial slot back to it, even if the registry evicted it meanwhile. An operator's forced
//! state ([`RouteCircuits::control`]) applies to every route's circuit, and to the ones
//! made while it holds. Lookups are one lock and a hash; a new route when full scans the
//! circuits once (`maxRoutes` is at most 1000).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use std::time::Duration;

use super::{Circuit, CircuitConfig, Control, OpenTime, Permit};
use crate::observer::{StateKind, Transition};

struct Entry {
    circuit: Arc<Circuit>,
    used: u64,
}

#[derive(Default)]
struct Routes {
    map: HashMap<Arc<str>, Entry>,
    tick: u64,
    /// The operator's command in force (open or disable), applied to new circuits too.
    forced: Option<Control>,
}

/// A route's circuit as [`RouteCircuits::lookup`] finds it.
pub struct Found {
    pub circuit: Option<Arc<Circuit>>,
    /// The route whose (closed) circuit was evicted to make room.
    pub evicted: Option<Arc<str>>,
    /// Whether `circuit` was made by this lookup (its state series starts now).
    pub created: bool,
}

/// The circuits of one breaker's routes.
pub struct RouteCircuits {
    cfg: CircuitConfig,
    open_time: OpenTime,
    max: usize,
    routes: Mutex<Routes>,
}

impl RouteCircuits {
    pub fn new(cfg: CircuitConfig, open_time: OpenTime, max_routes: u32) -> Self {
        Self {
            cfg,
            open_time,
            max: max_routes as usize,
            routes: Mutex::new(Routes::default()),
        }
    }

    /// The circuit of `route`, made if new; `None` when `maxRoutes` circuits exist and
    /// none of them is closed (or `maxRoutes` is 0): the call uses the breaker's circuit.
    pub fn get(&self, route: &str) -> Option<Arc<Circuit>> {
        self.lookup(route, Duration::ZERO).circuit
    }

    /// [`RouteCircuits::get`], telling which route was evicted to make room; a new
    /// circuit made at `now` takes the forced state in force.
    pub fn lookup(&self, route: &str, now: Duration) -> Found {
        let mut g = self.routes.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some(e) = g.map.get_mut(route) {
            e.used = tick;
            return Found {
                circuit: Some(e.circuit.clone()),
                evicted: None,
                created: false,
            };
        }
        let none = Found {
            circuit: None,
            evicted: None,
            created: false,
        };
        if self.max == 0 {
            return none;
        }
        let mut evicted = None;
        if g.map.len() >= self.max {
            let Some(victim) = g
                .map
                .iter()
                // Closed, and no call in flight: a permit carries its circuit, so only
                // the registry holds an idle one. A circuit evicted under a running call
                // would take that call's verdict with it (a trip no one sees).
                .filter(|(_, e)| {
                    e.circuit.state() == StateKind::Closed && Arc::strong_count(&e.circuit) == 1
                })
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                return none;
            };
            g.map.remove(&victim);
            evicted = Some(victim);
        }
        let c = Arc::new(Circuit::new(self.cfg.clone()).with_open_time(self.open_time.clone()));
        if let Some(f) = g.forced {
            // Born forced: no transition to tell (it never showed another state).
            c.control(f, now, &mut |_| {});
        }
        g.map.insert(
            route.into(),
            Entry {
                circuit: c.clone(),
                used: tick,
            },
        );
        Found {
            circuit: Some(c),
            evicted,
            created: true,
        }
    }

    /// Asks `circuit` (a route's) for a permit that carries it.
    pub fn acquire(
        circuit: &Arc<Circuit>,
        now: Duration,
        emit: &mut dyn FnMut(&Transition),
    ) -> Option<Permit> {
        let mut p = circuit.try_acquire(now, emit)?;
        p.circuit = Some(circuit.clone());
        Some(p)
    }

    /// Applies an operator's command to every route's circuit (and to those made while it
    /// holds); `emit` hears each route's transition.
    pub fn control(&self, c: Control, now: Duration, emit: &mut dyn FnMut(&str, &Transition)) {
        let circuits: Vec<(Arc<str>, Arc<Circuit>)> = {
            let mut g = self.routes.lock();
            g.forced = matches!(c, Control::Open | Control::Disable).then_some(c);
            g.map
                .iter()
                .map(|(k, e)| (k.clone(), e.circuit.clone()))
                .collect()
        };
        // Outside the registry's lock: a transition's observers may look routes up.
        for (route, circuit) in circuits {
            circuit.control(c, now, &mut |t| emit(&route, t));
        }
    }

    /// The state of `route`'s circuit; `None` when it has none (never used, or evicted
    /// while closed).
    pub fn state_of(&self, route: &str) -> Option<StateKind> {
        self.routes.lock().map.get(route).map(|e| e.circuit.state())
    }

    pub fn len(&self) -> usize {
        self.routes.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "per_route_tests.rs"]
mod tests;
