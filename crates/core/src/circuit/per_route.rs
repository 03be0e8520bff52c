//! Per-route circuits (`circuitPerRoute`, issue 30 item 3): one circuit per route template,
//! at most `maxRoutes` of them, the least recently used evicted to make room, never one
//! that is not closed (an open, half-open or forced circuit keeps its state until it
//! closes). When every circuit is not closed, a new route gets none: its calls use the
//! breaker's circuit.
//!
//! The registry only: the breaker's call path does not use it yet (see the report of the
//! change that added it). Its lookups are one lock and a hash; a new route when full
//! scans the circuits once (`maxRoutes` is at most 1000).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Circuit, CircuitConfig, OpenTime};
use crate::observer::StateKind;

struct Entry {
    circuit: Arc<Circuit>,
    used: u64,
}

#[derive(Default)]
struct Routes {
    map: HashMap<Arc<str>, Entry>,
    tick: u64,
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
        let mut g = self.routes.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some(e) = g.map.get_mut(route) {
            e.used = tick;
            return Some(e.circuit.clone());
        }
        if self.max == 0 {
            return None;
        }
        if g.map.len() >= self.max {
            let victim = g
                .map
                .iter()
                .filter(|(_, e)| e.circuit.state() == StateKind::Closed)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())?;
            g.map.remove(&victim);
        }
        let c = Arc::new(Circuit::new(self.cfg.clone()).with_open_time(self.open_time.clone()));
        g.map.insert(
            route.into(),
            Entry {
                circuit: c.clone(),
                used: tick,
            },
        );
        Some(c)
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
