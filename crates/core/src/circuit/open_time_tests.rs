//! The open period's rules on a hand-moved clock with injected randomness: growth per
//! failed trial up to resetTimeoutMax and back after a close, the jitter's range,
//! Retry-After holding the circuit open, and a half-open round bounded in time.

use std::sync::Arc;
use std::time::Duration;

use super::super::{Circuit, CircuitConfig, OpenTime, Verdict};
use crate::error::FailureKind;
use crate::observer::{StateKind, TransitionReason};
use crate::rng::Rng;

const MS: Duration = Duration::from_millis(1);
const FAIL: Verdict = Verdict::Failure(FailureKind::ConnectionRefused);
const OK: Verdict = Verdict::Success;

/// The same draw every time: `next_f64` = v / 2^64.
struct Fixed(u64);

impl Rng for Fixed {
    fn next_u64(&self) -> u64 {
        self.0
    }
}

fn circuit(max_ms: u64, wait_ms: Option<u64>, draw: u64) -> Circuit {
    Circuit::new(CircuitConfig {
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
    })
    .with_open_time(OpenTime {
        reset_timeout_max: Duration::from_millis(max_ms),
        half_open_max_wait: wait_ms.map(Duration::from_millis),
        rng: Some(Arc::new(Fixed(draw))),
    })
}

/// One call at `now` with verdict `v`; the open period that followed, if it opened.
fn call(c: &Circuit, v: Verdict, now: Duration) -> Option<Duration> {
    let p = c.try_acquire(now, &mut |_| {})?;
    c.on_result(p, v, Duration::ZERO, now, &mut |_| {})
        .then(|| c.open_for(now).unwrap())
}

/// Trips, then fails `trials` trials in a row, each as soon as it may run: the open
/// periods, in ms.
fn periods(c: &Circuit, trials: usize, mut now: Duration) -> (Vec<u128>, Duration) {
    let mut out = vec![call(c, FAIL, now).unwrap()];
    for _ in 0..trials {
        now += *out.last().unwrap();
        out.push(call(c, FAIL, now).expect("the trial failed and re-opened"));
    }
    now += *out.last().unwrap();
    (out.iter().map(Duration::as_millis).collect(), now)
}

#[test]
fn each_failed_trial_doubles_the_open_period_up_to_the_cap_and_a_close_starts_over() {
    // A draw of ~1: no jitter taken off.
    let c = circuit(5000, None, u64::MAX);
    let (p, now) = periods(&c, 4, MS);
    assert_eq!(p, vec![1000, 2000, 4000, 5000, 5000]);
    // A trial succeeds: closed; the next trip opens for resetTimeout again.
    assert!(call(&c, OK, now).is_none());
    assert_eq!(c.state(), StateKind::Closed);
    let (p, _) = periods(&c, 1, now + MS);
    assert_eq!(p, vec![1000, 2000]);
}

#[test]
fn jitter_takes_up_to_half_the_grown_period_never_below_reset_timeout() {
    // A draw of 1/2: 75 % of the grown period.
    let (p, _) = periods(&circuit(60_000, None, 1 << 63), 3, MS);
    assert_eq!(p, vec![1000, 1500, 3000, 6000]);
    // A draw of 0: half, but never less than resetTimeout.
    let (p, _) = periods(&circuit(60_000, None, 0), 3, MS);
    assert_eq!(p, vec![1000, 1000, 2000, 4000]);
}

#[test]
fn without_reset_timeout_max_every_open_is_reset_timeout() {
    let (p, _) = periods(&circuit(0, None, u64::MAX), 3, MS);
    assert_eq!(p, vec![1000, 1000, 1000, 1000]);
    let (p, _) = periods(&circuit(1000, None, u64::MAX), 2, MS);
    assert_eq!(p, vec![1000, 1000, 1000]);
}

#[test]
fn retry_after_holds_the_circuit_open_at_least_that_long() {
    let c = circuit(0, None, 0);
    let now = MS;
    assert_eq!(call(&c, FAIL, now), Some(1000 * MS));
    c.hold_open_for(30_000 * MS, now);
    assert_eq!(c.open_for(now), Some(30_000 * MS));
    assert!(c.try_acquire(now + 29_999 * MS, &mut |_| {}).is_none());
    // A shorter one never shortens it.
    c.hold_open_for(10 * MS, now);
    assert_eq!(c.open_for(now), Some(30_000 * MS));
    let trial = c.try_acquire(now + 30_000 * MS, &mut |_| {});
    assert!(trial.is_some_and(|p| p.is_trial()));
    // Not open: nothing to hold.
    let closed = circuit(0, None, 0);
    closed.hold_open_for(30_000 * MS, now);
    assert_eq!(closed.open_for(now), None);
}

#[test]
fn a_half_open_round_not_decided_in_time_reopens_and_counts_as_a_failed_trial() {
    let c = circuit(8000, Some(500), u64::MAX);
    assert_eq!(call(&c, FAIL, MS), Some(1000 * MS));
    let hanging = c.try_acquire(1001 * MS, &mut |_| {}).expect("a trial");
    // Within the bound: others get the fallback, the round goes on.
    assert!(c.try_acquire(1500 * MS, &mut |_| {}).is_none());
    assert_eq!(c.state(), StateKind::HalfOpen);
    let mut log = vec![];
    assert!(c
        .try_acquire(1501 * MS, &mut |t| log.push(t.reason))
        .is_none());
    assert_eq!(c.state(), StateKind::Open);
    assert_eq!(log, vec![TransitionReason::HalfOpenTimeout]);
    // Grown as after a failed trial; the hanging trial's late verdict moves nothing.
    assert_eq!(c.open_for(1501 * MS), Some(2000 * MS));
    assert!(!c.on_result(hanging, OK, Duration::ZERO, 1600 * MS, &mut |_| {}));
    assert_eq!(c.state(), StateKind::Open);
}
