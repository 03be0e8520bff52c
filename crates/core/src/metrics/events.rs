//! The families that count what a breaker's events say (see the ownership rule in
//! `metrics/mod.rs`): an observer subscribed to every breaker, and fed the same events by
//! a guarded circuit. Nothing else writes these series.

use prometheus::{Gauge, Histogram, IntCounter, IntGauge};

use super::routes::RouteMetrics;
use super::series::Series;
use super::{FAMILIES, OUTCOME_ABORTED, OUTCOME_CLIENT_ERROR, OUTCOME_REJECTED, OUTCOME_SUCCESS};
use crate::error::FailureKind;
use crate::observer::{CallKind, Event, FallbackSource, Observer, StateKind};

/// One breaker's event-counted series.
pub struct EventMetrics {
    state: IntGauge,
    trips: IntCounter,
    success: IntCounter,
    client_error: IntCounter,
    rejected: IntCounter,
    aborted: IntCounter,
    /// By `FailureKind::index`.
    failures: Vec<IntCounter>,
    /// By `FailureKind::index`.
    retries: Vec<IntCounter>,
    duration: Histogram,
    failure_rate: Gauge,
    budget_exhausted: IntCounter,
    /// By `CallKind as usize`.
    calls: Vec<IntCounter>,
    /// By `FallbackSource as usize`.
    fallbacks: Vec<IntCounter>,
    coalesced: IntCounter,
    routes: RouteMetrics,
}

impl EventMetrics {
    /// `max_routes` caps the distinct route labels (the `maxRoutes` option).
    pub fn new(s: &Series, max_routes: u32) -> Self {
        let f = &*FAMILIES;
        let m = Self {
            state: s.of(&f.state, &[]),
            trips: s.of(&f.trips, &[]),
            success: s.of(&f.requests, &[OUTCOME_SUCCESS]),
            client_error: s.of(&f.requests, &[OUTCOME_CLIENT_ERROR]),
            rejected: s.of(&f.requests, &[OUTCOME_REJECTED]),
            aborted: s.of(&f.requests, &[OUTCOME_ABORTED]),
            failures: FailureKind::ALL
                .iter()
                .map(|k| s.of(&f.requests, &[k.label()]))
                .collect(),
            retries: FailureKind::ALL
                .iter()
                .map(|k| s.of(&f.retries, &[k.label()]))
                .collect(),
            duration: s.of(&f.duration, &[]),
            // 0 until the window first holds calls, then the last window's rate.
            failure_rate: s.of(&f.failure_rate, &[]),
            budget_exhausted: s.of(&f.budget_exhausted, &[]),
            calls: CallKind::ALL
                .iter()
                .map(|k| s.of(&f.calls, &[k.as_str()]))
                .collect(),
            fallbacks: FallbackSource::ALL
                .iter()
                .map(|k| s.of(&f.fallbacks, &[k.as_str()]))
                .collect(),
            coalesced: s.of(&f.coalesced, &[]),
            routes: RouteMetrics::new(s.name(), max_routes),
        };
        m.set_state(StateKind::Closed);
        m
    }

    /// The state gauge, from the circuit's stats at scrape time (transitions set it too).
    pub fn set_state(&self, s: StateKind) {
        self.state.set(s as i64);
    }

    /// The window's failure percentage at scrape time; an empty window (`None`) keeps the
    /// last rate, so an open circuit, which makes no calls, keeps showing the rate that
    /// opened it.
    pub fn set_failure_rate(&self, pct: Option<f64>) {
        if let Some(p) = pct {
            self.failure_rate.set(p);
        }
    }

    /// Stops labelling routes and removes those labelled (the other series go with the
    /// breaker's [`Series`]).
    pub fn remove_routes(&self) {
        self.routes.remove();
    }

    /// A route's circuit was made: its state series starts.
    pub fn show_route_state(&self, route: &str, state: StateKind) {
        self.routes.set_state(route, state);
    }

    /// A route's circuit was evicted: its state series goes.
    pub fn remove_route_state(&self, route: &str) {
        self.routes.remove_state(route);
    }
}

impl Observer for EventMetrics {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Transition(t) => {
                self.state.set(t.to as i64);
                if t.to == StateKind::Open {
                    self.trips.inc();
                    // The rate that opened it, even if no scrape saw the window before
                    // it emptied (an open circuit's window only empties).
                    if t.calls > 0 {
                        self.failure_rate.set(t.failure_percent);
                    }
                }
            }
            Event::RouteTransition { route, transition } => {
                self.routes.set_state(route, transition.to);
                if transition.to == StateKind::Open {
                    self.trips.inc();
                }
            }
            Event::Success { latency, route } => {
                self.success.inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, OUTCOME_SUCCESS, *latency);
            }
            Event::ClientError { latency, route, .. } => {
                self.client_error.inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, OUTCOME_CLIENT_ERROR, *latency);
            }
            Event::Failure {
                kind,
                latency,
                route,
            } => {
                self.failures[kind.index()].inc();
                self.duration.observe(latency.as_secs_f64());
                self.routes.observe(*route, kind.label(), *latency);
            }
            Event::Reject => self.rejected.inc(),
            Event::Aborted => self.aborted.inc(),
            Event::Fallback { source, .. } => self.fallbacks[*source as usize].inc(),
            Event::Retry { reason, .. } => self.retries[reason.index()].inc(),
            Event::RetryBudgetExhausted => self.budget_exhausted.inc(),
            Event::Completed(kind) => self.calls[*kind as usize].inc(),
            Event::Coalesced => self.coalesced.inc(),
            // Counted by their owners (see `metrics/mod.rs`): TLS reloads by `tls/`, the
            // outbox's writes by `outbox/`, Redis errors by `lkg/`, hedges by `hedge/`, the
            // fleet circuit's by `fleet/`; the rest are logged.
            Event::Fleet(_)
            | Event::Fire
            | Event::Hedge { .. }
            | Event::Shutdown
            | Event::RedisHealth { .. }
            | Event::TlsReload { .. }
            | Event::Queued { .. }
            | Event::Delivered { .. }
            | Event::DeadLetter { .. }
            | Event::Outbox { .. } => {}
        }
    }
}
