//! Route-level metrics: attempts and latency by the caller's route template
//! (`init.route = '/api/sigils/:id'`). Never a raw URL: the label comes only from the
//! template, and at most `maxRoutes` distinct values per breaker are kept; later ones
//! are counted as `route="other"`, so a caller passing ids cannot explode the series.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus::{Histogram, IntCounter, IntGauge};

use super::{FAMILIES, OUTCOME_CLIENT_ERROR, OUTCOME_SUCCESS};
use crate::error::FailureKind;
use crate::observer::StateKind;

pub const DEFAULT_MAX_ROUTES: u32 = 50;
pub const OTHER_ROUTE: &str = "other";

struct RouteHandles {
    /// Indexed like `outcomes()`.
    outcomes: Vec<(&'static str, IntCounter)>,
    duration: Histogram,
}

fn outcomes() -> impl Iterator<Item = &'static str> {
    [OUTCOME_SUCCESS, OUTCOME_CLIENT_ERROR]
        .into_iter()
        .chain(FailureKind::ALL.iter().map(|k| k.label()))
}

pub struct RouteMetrics {
    name: String,
    max: usize,
    /// `None` once removed: a late attempt of a closed breaker must not create series again.
    routes: RwLock<Option<HashMap<Box<str>, Arc<RouteHandles>>>>,
    /// Route circuits' states (`circuitPerRoute`): at most `max` routes labelled; `None`
    /// once removed.
    states: parking_lot::Mutex<Option<HashMap<Box<str>, IntGauge>>>,
}

impl RouteMetrics {
    pub fn new(name: &str, max: u32) -> Self {
        Self {
            name: name.to_string(),
            max: max as usize,
            routes: RwLock::new(Some(HashMap::new())),
            states: parking_lot::Mutex::new(Some(HashMap::new())),
        }
    }

    /// Shows a route circuit's state. A route over the cap is not labelled (the registry
    /// holds at most `maxRoutes` circuits and removes an evicted one's series, so only a
    /// late transition of an evicted circuit can find the map full).
    pub fn set_state(&self, route: &str, to: StateKind) {
        let mut g = self.states.lock();
        let Some(map) = g.as_mut() else { return };
        if let Some(gauge) = map.get(route) {
            gauge.set(to as i64);
            return;
        }
        if map.len() >= self.max {
            return;
        }
        let gauge = FAMILIES
            .route_state
            .with_label_values(&[self.name.as_str(), route]);
        gauge.set(to as i64);
        map.insert(route.into(), gauge);
    }

    /// Removes a route circuit's state series (its circuit was evicted).
    pub fn remove_state(&self, route: &str) {
        let mut g = self.states.lock();
        if g.as_mut().and_then(|m| m.remove(route)).is_some() {
            let _ = FAMILIES
                .route_state
                .remove_label_values(&[self.name.as_str(), route]);
        }
    }

    fn handles(&self, route: &str) -> Option<Arc<RouteHandles>> {
        if let Some(h) = self.routes.read().as_ref()?.get(route) {
            return Some(h.clone());
        }
        let mut guard = self.routes.write();
        let map = guard.as_mut()?;
        let known = map.len() - usize::from(map.contains_key(OTHER_ROUTE));
        let key = if map.contains_key(route) || known < self.max {
            route
        } else {
            OTHER_ROUTE
        };
        map.entry(key.into())
            .or_insert_with(|| {
                let f = &*FAMILIES;
                let n = self.name.as_str();
                Arc::new(RouteHandles {
                    outcomes: outcomes()
                        .map(|o| (o, f.route_requests.with_label_values(&[n, key, o])))
                        .collect(),
                    duration: f.route_duration.with_label_values(&[n, key]),
                })
            })
            .clone()
            .into()
    }

    /// Counts one attempt of a call that named its route; calls without one are not labelled.
    pub fn observe(&self, route: Option<&str>, outcome: &str, latency: Duration) {
        let Some(route) = route else { return };
        if self.max == 0 {
            return;
        }
        let Some(h) = self.handles(route) else { return };
        if let Some((_, c)) = h.outcomes.iter().find(|(o, _)| *o == outcome) {
            c.inc();
        }
        h.duration.observe(latency.as_secs_f64());
    }

    pub fn remove(&self) {
        let f = &*FAMILIES;
        let n = self.name.as_str();
        for route in self.states.lock().take().unwrap_or_default().into_keys() {
            let _ = f.route_state.remove_label_values(&[n, &route]);
        }
        let routes = self.routes.write().take().unwrap_or_default();
        for route in routes.into_keys() {
            for o in outcomes() {
                let _ = f.route_requests.remove_label_values(&[n, &route, o]);
            }
            let _ = f.route_duration.remove_label_values(&[n, &route]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render;

    #[test]
    fn routes_are_capped_and_removed() {
        let m = RouteMetrics::new("routes-unit", 2);
        let ms = Duration::from_millis(1);
        m.observe(Some("/a/:id"), OUTCOME_SUCCESS, ms);
        m.observe(Some("/b/:id"), "timeout", ms);
        m.observe(Some("/c/:id"), OUTCOME_SUCCESS, ms);
        m.observe(Some("/d/:id"), OUTCOME_SUCCESS, ms);
        m.observe(Some("/a/:id"), OUTCOME_SUCCESS, ms);
        m.observe(None, OUTCOME_SUCCESS, ms);
        let text = render();
        let line = |route: &str, outcome: &str| {
            format!("dnastore_route_requests_total{{name=\"routes-unit\",outcome=\"{outcome}\",route=\"{route}\"}}")
        };
        assert!(text.contains(&format!("{} 2", line("/a/:id", "success"))));
        assert!(text.contains(&format!("{} 1", line("/b/:id", "timeout"))));
        assert!(
            text.contains(&format!("{} 2", line("other", "success"))),
            "/c and /d over the cap"
        );
        assert!(!text.contains("/c/:id"));
        m.remove();
        assert!(!render().contains("routes-unit"));
        m.observe(Some("/late/:id"), OUTCOME_SUCCESS, ms);
        assert!(
            !render().contains("routes-unit"),
            "an attempt ending after removal creates no series"
        );
    }

    #[test]
    fn zero_disables_route_labels() {
        let m = RouteMetrics::new("routes-off", 0);
        m.observe(Some("/a"), OUTCOME_SUCCESS, Duration::ZERO);
        assert!(!render().contains("routes-off"));
    }
}
