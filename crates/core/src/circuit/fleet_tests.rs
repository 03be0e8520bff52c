//! The circuit under fleet decisions, on a hand-moved clock: a fleet open with its own end,
//! its leased half-open (held trials), a fleet close that closes only what the fleet
//! opened, and local decisions that take the circuit back.

use std::sync::Arc;
use std::time::Duration;

use super::super::{Circuit, CircuitConfig, Verdict};
use crate::error::FailureKind;
use crate::observer::{FleetNote, FleetWhy, StateKind, Transition, TransitionReason};

const MS: Duration = Duration::from_millis(1);
const FAIL: Verdict = Verdict::Failure(FailureKind::ConnectionRefused);

fn circuit(trials: u32) -> Circuit {
    Circuit::new(CircuitConfig {
        error_threshold_percentage: 50,
        reset_timeout: 1000 * MS,
        rolling_count_timeout: 10_000 * MS,
        rolling_count_buckets: 10,
        volume_threshold: 10,
        max_failures: 3,
        half_open_max_calls: trials,
        slow_call_duration: None,
        slow_call_rate_threshold: 50,
        rotated_by_caller: false,
    })
}

fn note(generation: u64) -> Arc<FleetNote> {
    Arc::new(FleetNote {
        by: "web-1:7:abc".into(),
        generation,
        votes: 2,
        why: FleetWhy::Quorum,
    })
}

#[test]
fn a_fleet_open_is_an_open_with_the_fleets_end_and_note() {
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    assert!(c.fleet_open(400 * MS, note(1), 100 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(c.state(), StateKind::Open);
    assert_eq!(
        c.open_for(100 * MS),
        Some(300 * MS),
        "the fleet's end, not resetTimeout"
    );
    let t = &log[0];
    assert_eq!(
        (t.from, t.to, t.reason),
        (StateKind::Closed, StateKind::Open, TransitionReason::Fleet)
    );
    assert_eq!(
        t.fleet.as_deref().map(|n| n.by.as_str()),
        Some("web-1:7:abc")
    );
    assert_eq!(c.trips(), 1);
    // Already open: the fleet's end is taken, without another transition.
    assert!(!c.fleet_open(900 * MS, note(1), 200 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(log.len(), 1);
    assert_eq!(c.open_for(200 * MS), Some(700 * MS));
}

#[test]
fn a_local_trip_takes_the_fleets_end_when_the_fleet_opens() {
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    for _ in 0..3 {
        let p = c.try_acquire(MS, &mut |_| {}).unwrap();
        c.on_result(p, FAIL, MS, MS, &mut |t| log.push(t.clone()));
    }
    assert_eq!(log[0].fleet, None, "its own decision: local");
    assert!(!c.fleet_open(1200 * MS, note(1), 50 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(log.len(), 1);
    assert!(c.follows_fleet());
    assert_eq!(c.open_for(50 * MS), Some(1150 * MS));
}

#[test]
fn the_fleets_round_admits_no_trial_while_its_leases_are_held_elsewhere() {
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    c.fleet_open(100 * MS, note(1), Duration::ZERO, &mut |t| {
        log.push(t.clone())
    });
    // Another replica holds the lease for 500 ms.
    c.hold_trials(600 * MS);
    assert!(c
        .try_acquire(150 * MS, &mut |t| log.push(t.clone()))
        .is_none());
    // Half-open all the same (the whole fleet is), with the fleet's note kept.
    assert_eq!(c.state(), StateKind::HalfOpen);
    assert!(log[1].fleet.is_some());
    assert!(c.try_acquire(599 * MS, &mut |_| {}).is_none());
    // The lease could have expired: a trial may ask for it.
    let p = c.try_acquire(600 * MS, &mut |_| {}).expect("a trial");
    assert!(p.is_trial());
    assert!(c.follows_fleet());
}

#[test]
fn a_hold_is_forgotten_by_a_new_round_and_by_a_detach() {
    let c = circuit(1);
    c.fleet_open(100 * MS, note(1), Duration::ZERO, &mut |_| {});
    c.hold_trials(10_000 * MS);
    assert!(c.try_acquire(150 * MS, &mut |_| {}).is_none());
    // The fleet reopened (another replica's trial failed) and its next round began.
    c.fleet_open(200 * MS, note(2), 150 * MS, &mut |_| {});
    assert!(c.try_acquire(250 * MS, &mut |_| {}).is_some());
    let c = circuit(1);
    c.fleet_open(100 * MS, note(1), Duration::ZERO, &mut |_| {});
    c.hold_trials(10_000 * MS);
    c.fleet_detach();
    assert!(!c.follows_fleet());
    assert!(
        c.try_acquire(150 * MS, &mut |_| {}).is_some(),
        "a local trial"
    );
}

#[test]
fn a_fleet_close_closes_only_a_circuit_that_follows_the_fleet() {
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    // Opened alone (its own path is broken): the fleet's close is not for it.
    for _ in 0..3 {
        let p = c.try_acquire(MS, &mut |_| {}).unwrap();
        c.on_result(p, FAIL, MS, MS, &mut |t| log.push(t.clone()));
    }
    assert!(!c.fleet_close(note(2), 10 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(c.state(), StateKind::Open);
    // Following the fleet's open: closed with it, window cleared, the closer named.
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    c.fleet_open(500 * MS, note(1), Duration::ZERO, &mut |t| {
        log.push(t.clone())
    });
    assert!(c.fleet_close(note(2), 600 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(c.state(), StateKind::Closed);
    let t = log.last().unwrap();
    assert_eq!(
        (t.to, t.reason),
        (StateKind::Closed, TransitionReason::Fleet)
    );
    assert_eq!(t.fleet.as_ref().map(|n| n.generation), Some(2));
    assert!(!c.follows_fleet());
    assert!(c.try_acquire(601 * MS, &mut |_| {}).is_some());
}

#[test]
fn a_leased_trials_local_failure_is_a_local_decision() {
    let c = circuit(1);
    let mut log: Vec<Transition> = vec![];
    c.fleet_open(100 * MS, note(1), Duration::ZERO, &mut |t| {
        log.push(t.clone())
    });
    let p = c
        .try_acquire(150 * MS, &mut |t| log.push(t.clone()))
        .unwrap();
    c.on_result(p, FAIL, MS, 160 * MS, &mut |t| log.push(t.clone()));
    let t = log.last().unwrap();
    assert_eq!(
        (t.to, t.reason),
        (StateKind::Open, TransitionReason::TrialFailed)
    );
    assert_eq!(t.fleet, None);
    assert!(!c.follows_fleet(), "until the fleet's reopen arrives");
}

#[test]
fn a_late_joiner_enters_the_fleets_round_half_open() {
    let c = circuit(2);
    let mut log: Vec<Transition> = vec![];
    // The fleet opened until 100 ms; this replica learns it at 300 ms.
    assert!(c.fleet_open(100 * MS, note(1), 300 * MS, &mut |t| log.push(t.clone())));
    assert_eq!(c.state(), StateKind::HalfOpen);
    assert_eq!(log[0].reason, TransitionReason::Fleet);
    assert_eq!(c.trips(), 0, "not an open of its own");
    assert!(c.try_acquire(300 * MS, &mut |_| {}).unwrap().is_trial());
}

#[test]
fn a_failed_trial_grows_from_the_fleets_failed_trials_and_reports_its_period() {
    let c = circuit(1).with_open_time(super::super::OpenTime {
        reset_timeout_max: 60_000 * MS,
        half_open_max_wait: None,
        rng: None,
    });
    // The fleet reopened after two failed trials in a row (of other replicas).
    c.fleet_failed_trials(2);
    c.fleet_open(1000 * MS, note(3), Duration::ZERO, &mut |_| {});
    assert_eq!(c.chosen_open(Duration::ZERO), Some((1000 * MS, 2)));
    // This replica's trial of the next round fails: the third in a row, 8 s.
    let now = 1000 * MS;
    let p = c.try_acquire(now, &mut |_| {}).expect("a trial");
    assert!(c.on_result(p, FAIL, Duration::ZERO, now, &mut |_| {}));
    assert_eq!(c.chosen_open(now), Some((8000 * MS, 3)));
    // Its decision comes back; a later round's trial closes the fleet: the growth ends.
    c.fleet_failed_trials(3);
    c.fleet_open(now + 8000 * MS, note(4), now, &mut |_| {});
    c.fleet_close(note(5), now, &mut |_| {});
    assert_eq!(c.chosen_open(now), None);
    let p = c.try_acquire(now, &mut |_| {}).expect("closed");
    drop(p);
    c.fleet_open(now + 1000 * MS, note(6), now, &mut |_| {});
    let now = now + 1000 * MS;
    let p = c.try_acquire(now, &mut |_| {}).expect("a trial");
    assert!(c.on_result(p, FAIL, Duration::ZERO, now, &mut |_| {}));
    assert_eq!(c.chosen_open(now), Some((2000 * MS, 1)), "from 0 again");
}
