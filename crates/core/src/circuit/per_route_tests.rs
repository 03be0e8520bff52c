//! The per-route registry on a hand-moved clock: routes are isolated, the least recently
//! used closed circuit makes room, an open one is never evicted.

use std::time::Duration;

use super::super::{CircuitConfig, OpenTime, Verdict};
use super::RouteCircuits;
use crate::error::FailureKind;
use crate::observer::StateKind;

const MS: Duration = Duration::from_millis(1);
const FAIL: Verdict = Verdict::Failure(FailureKind::ConnectionRefused);

fn routes(max: u32) -> RouteCircuits {
    let cfg = CircuitConfig {
        error_threshold_percentage: 50,
        reset_timeout: 1000 * MS,
        rolling_count_timeout: 10_000 * MS,
        rolling_count_buckets: 10,
        volume_threshold: 100,
        max_failures: 1,
        half_open_max_calls: 1,
        slow_call_duration: None,
        slow_call_rate_threshold: 50,
        rotated_by_caller: false,
    };
    RouteCircuits::new(cfg, OpenTime::default(), max)
}

fn trip(r: &RouteCircuits, route: &str) {
    let c = r.get(route).unwrap();
    let p = c.try_acquire(MS, &mut |_| {}).unwrap();
    assert!(c.on_result(p, FAIL, Duration::ZERO, MS, &mut |_| {}));
}

#[test]
fn a_failing_route_opens_only_its_own_circuit() {
    let r = routes(10);
    trip(&r, "/api/validate");
    assert_eq!(r.state_of("/api/validate"), Some(StateKind::Open));
    let sigils = r.get("/api/sigils/:id").unwrap();
    assert!(sigils.try_acquire(2 * MS, &mut |_| {}).is_some());
    assert_eq!(r.state_of("/api/sigils/:id"), Some(StateKind::Closed));
    assert_eq!(r.state_of("/never"), None);
}

#[test]
fn the_least_recently_used_closed_circuit_makes_room_never_an_open_one() {
    let r = routes(3);
    trip(&r, "/a"); // open, and the least recently used
    r.get("/b");
    r.get("/c");
    r.get("/b"); // /c is now the least recently used closed one
    r.get("/d");
    assert_eq!(r.len(), 3);
    assert_eq!(r.state_of("/a"), Some(StateKind::Open), "open: kept");
    assert_eq!(r.state_of("/c"), None, "evicted");
    assert!(r.state_of("/b").is_some() && r.state_of("/d").is_some());
    // Every circuit open: a new route gets none (the breaker's circuit answers).
    trip(&r, "/b");
    trip(&r, "/d");
    assert!(r.get("/e").is_none());
    assert_eq!(r.len(), 3);
    // Under 10,000 distinct routes the registry stays at maxRoutes.
    let many = routes(50);
    for i in 0..10_000 {
        many.get(&format!("/r/{i}"));
    }
    assert_eq!(many.len(), 50);
}

#[test]
fn a_circuit_with_a_call_in_flight_is_not_evicted() {
    let r = routes(1);
    let c = r.get("/busy").unwrap();
    let p = RouteCircuits::acquire(&c, MS, &mut |_| {}).unwrap();
    drop(c);
    assert!(r.get("/other").is_none(), "the only circuit is busy");
    assert_eq!(r.state_of("/busy"), Some(StateKind::Closed));
    drop(p);
    assert!(
        r.get("/other").is_some(),
        "idle again: evicted to make room"
    );
    assert_eq!(r.state_of("/busy"), None);
}
