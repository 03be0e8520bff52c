//! Manual control on a hand-moved clock: forced open holds past resetTimeout with no
//! trial, disabled admits everything and never trips while counting, enable hands the state
//! machine back, close clears the window, and stale permits move nothing.

use std::time::Duration;

use super::super::{Circuit, CircuitConfig, Control, Forced, Verdict};
use crate::error::FailureKind;
use crate::observer::{StateKind, Transition, TransitionReason};

const MS: Duration = Duration::from_millis(1);
const FAIL: Verdict = Verdict::Failure(FailureKind::ConnectionRefused);
const OK: Verdict = Verdict::Success;

fn circuit() -> Circuit {
    Circuit::new(CircuitConfig {
        error_threshold_percentage: 50,
        reset_timeout: 1000 * MS,
        rolling_count_timeout: 10_000 * MS,
        rolling_count_buckets: 10,
        volume_threshold: 10,
        max_failures: 3,
        half_open_max_calls: 1,
        slow_call_duration: None,
        slow_call_rate_threshold: 50,
        rotated_by_caller: false,
    })
}

fn control(c: &Circuit, cmd: Control, now: Duration, log: &mut Vec<Transition>) -> bool {
    c.control(cmd, now, &mut |t| log.push(t.clone()))
}

fn call(c: &Circuit, v: Verdict, now: Duration) -> Option<bool> {
    let p = c.try_acquire(now, &mut |_| {})?;
    Some(c.on_result(p, v, Duration::ZERO, now, &mut |_| {}))
}

#[test]
fn forced_open_admits_nothing_until_closed_and_shows_everywhere() {
    let c = circuit();
    let mut log = vec![];
    assert!(control(&c, Control::Open, MS, &mut log));
    assert!(
        !control(&c, Control::Open, MS, &mut log),
        "already forced open"
    );
    assert_eq!(c.state(), StateKind::ForcedOpen);
    assert_eq!(c.forced(), Some(Forced::Open));
    assert_eq!(c.stats(MS).state, StateKind::ForcedOpen);
    // Long past resetTimeout: no trial, no half-open, on the lock-free path too.
    let later = 3_600_000 * MS;
    assert!(c.is_open_at(later));
    assert!(c.try_acquire(later, &mut |t| log.push(t.clone())).is_none());
    assert_eq!(c.poll_half_open(later, &mut |t| log.push(t.clone())), None);
    assert_eq!(c.state(), StateKind::ForcedOpen);
    assert_eq!(c.trips(), 0, "a forced open is no trip");

    assert!(control(&c, Control::Close, later, &mut log));
    assert_eq!(c.state(), StateKind::Closed);
    assert!(c.try_acquire(later, &mut |_| {}).is_some());
    let seen: Vec<_> = log.iter().map(|t| (t.from, t.to, t.reason)).collect();
    assert_eq!(
        seen,
        vec![
            (
                StateKind::Closed,
                StateKind::ForcedOpen,
                TransitionReason::Forced
            ),
            (
                StateKind::ForcedOpen,
                StateKind::Closed,
                TransitionReason::Forced
            ),
        ]
    );
}

#[test]
fn disabled_admits_every_call_counts_it_and_never_trips() {
    let c = circuit();
    let mut log = vec![];
    assert!(control(&c, Control::Disable, MS, &mut log));
    for i in 0..50 {
        assert_eq!(
            call(&c, FAIL, MS * (i + 2)),
            Some(false),
            "call {i} admitted, no trip"
        );
    }
    let s = c.stats(100 * MS);
    assert_eq!(s.state, StateKind::Disabled);
    assert_eq!(s.failures, 50, "outcomes still counted");
    assert_eq!(c.trips(), 0);
    assert_eq!(log.len(), 1);
}

#[test]
fn disable_while_open_lets_calls_through_and_enable_restores_the_open_state() {
    let c = circuit();
    for _ in 0..3 {
        call(&c, FAIL, MS);
    }
    assert_eq!(c.state(), StateKind::Open);
    let mut log = vec![];
    assert!(control(&c, Control::Disable, 2 * MS, &mut log));
    assert!(
        !c.is_open_at(2 * MS),
        "the lock-free path must not short-circuit"
    );
    assert_eq!(call(&c, OK, 3 * MS), Some(false));
    assert!(control(&c, Control::Enable, 4 * MS, &mut log));
    assert_eq!(c.state(), StateKind::Open);
    assert!(
        c.try_acquire(5 * MS, &mut |_| {}).is_none(),
        "open until resetTimeout"
    );
    // Its resetTimeout elapsed: the next call is a trial, as without the interlude.
    let p = c.try_acquire(1001 * MS, &mut |_| {}).expect("a trial");
    assert!(p.is_trial());
    let seen: Vec<_> = log.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        seen,
        vec![
            (StateKind::Open, StateKind::Disabled),
            (StateKind::Disabled, StateKind::Open)
        ]
    );
}

#[test]
fn permits_from_before_a_force_or_during_it_move_nothing() {
    let c = circuit();
    let before = c.try_acquire(MS, &mut |_| {}).unwrap();
    control(&c, Control::Disable, MS, &mut vec![]);
    let during = c.try_acquire(MS, &mut |_| {}).unwrap();
    control(&c, Control::Enable, MS, &mut vec![]);
    for p in [before, during] {
        assert!(!c.on_result(p, FAIL, Duration::ZERO, 2 * MS, &mut |_| {}));
    }
    // Two stale failures, then three of the current state: only those count in a row.
    call(&c, FAIL, 3 * MS);
    call(&c, FAIL, 3 * MS);
    assert_eq!(c.state(), StateKind::Closed);
    call(&c, FAIL, 3 * MS);
    assert_eq!(c.state(), StateKind::Open);
}

#[test]
fn a_half_open_round_forced_and_released_starts_over() {
    let c = circuit();
    for _ in 0..3 {
        call(&c, FAIL, MS);
    }
    let trial = c.try_acquire(1001 * MS, &mut |_| {}).expect("trial");
    assert_eq!(c.state(), StateKind::HalfOpen);
    control(&c, Control::Open, 1002 * MS, &mut vec![]);
    control(&c, Control::Enable, 1003 * MS, &mut vec![]);
    // The old trial's verdict is stale; a new trial is admitted (the round is not wedged).
    assert!(!c.on_result(trial, OK, Duration::ZERO, 1004 * MS, &mut |_| {}));
    assert_eq!(c.state(), StateKind::HalfOpen);
    let p = c.try_acquire(1005 * MS, &mut |_| {}).expect("a new trial");
    c.on_result(p, OK, Duration::ZERO, 1006 * MS, &mut |_| {});
    assert_eq!(c.state(), StateKind::Closed);
}

#[test]
fn close_clears_the_window_so_old_failures_cannot_reopen() {
    let c = circuit();
    call(&c, FAIL, MS);
    call(&c, FAIL, MS);
    control(&c, Control::Open, MS, &mut vec![]);
    control(&c, Control::Close, MS, &mut vec![]);
    assert_eq!(c.stats(MS).failures, 0);
    call(&c, FAIL, 2 * MS);
    assert_eq!(
        c.state(),
        StateKind::Closed,
        "one failure, not three in a row"
    );
    assert!(
        !control(&c, Control::Close, 3 * MS, &mut vec![]),
        "already closed"
    );
    assert!(
        !control(&c, Control::Enable, 3 * MS, &mut vec![]),
        "not forced"
    );
}
