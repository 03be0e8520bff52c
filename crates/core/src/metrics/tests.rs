//! The table against the exposition, and a breaker's series coming and going.

use std::time::Duration;

use super::*;
use crate::breaker::BreakerMetrics;
use crate::observer::{Event, Observer, StateKind};

#[test]
fn families_list_matches_what_render_prints() {
    // With the outbox's, the bulkhead's and the fleet circuit's families, so the check does
    // not depend on another test having made a breaker with them first.
    let m = BreakerMetrics::new("metrics-test-families", DEFAULT_MAX_ROUTES);
    let (_outbox, _limit, _fleet) = (m.outbox(), m.limit(), m.fleet());
    m.events.on_event(&Event::Success {
        latency: Duration::from_millis(1),
        route: Some("/r"),
    });
    let opened = crate::observer::Transition {
        from: StateKind::Closed,
        to: StateKind::Open,
        reason: crate::observer::TransitionReason::ConsecutiveFailures,
        failures: 1,
        calls: 1,
        failure_percent: 100.0,
        slow_calls: 0,
        slow_percent: 0.0,
        consecutive_failures: 1,
        time_in_previous: Duration::ZERO,
        trips: 1,
        fleet: None,
    };
    m.events.on_event(&Event::RouteTransition {
        route: "/r",
        transition: &opened,
    });
    let text = render();
    let mut typed: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_string(), t.to_string())
        })
        .collect();
    typed.sort();
    let listed: Vec<(String, String)> = families()
        .into_iter()
        .map(|(n, t, _)| (n, t.to_string()))
        .collect();
    assert_eq!(typed, listed);
    m.remove();
}

#[test]
fn series_appear_and_are_removed() {
    let m = BreakerMetrics::new("metrics-test-a", DEFAULT_MAX_ROUTES);
    m.events.on_event(&Event::Success {
        latency: Duration::from_millis(3),
        route: None,
    });
    m.events.set_state(StateKind::Open);
    let text = render();
    assert!(text.contains("dnastore_circuit_state{name=\"metrics-test-a\"} 1"));
    assert!(text.contains("dnastore_requests_total{name=\"metrics-test-a\",outcome=\"success\"} 1"));
    assert!(text.contains(
        "dnastore_request_duration_seconds_bucket{name=\"metrics-test-a\",le=\"0.005\"} 1"
    ));
    m.remove();
    assert!(!render().contains("metrics-test-a"));
}
