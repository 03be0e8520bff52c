//! State-machine tests on a manual clock: no sleeps, every step explicit.

use super::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A clock that only moves when told to: the state machine takes `now` as an argument,
/// so these tests need no runtime at all.
#[derive(Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn new() -> Self {
        Self::default()
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

const MS: Duration = Duration::from_millis(1);
const FAIL: Verdict = Verdict::Failure(FailureKind::ConnectionRefused);
const OK: Verdict = Verdict::Success;

fn cfg() -> CircuitConfig {
    CircuitConfig {
        error_threshold_percentage: 50,
        reset_timeout: 1000 * MS,
        rolling_count_timeout: 10_000 * MS,
        rolling_count_buckets: 10,
        volume_threshold: 10,
        max_failures: 3,
        half_open_max_calls: 2,
        slow_call_duration: None,
        slow_call_rate_threshold: 50,
        rotated_by_caller: false,
    }
}

struct Harness {
    c: Circuit,
    clock: ManualClock,
    log: Vec<Transition>,
}

impl Harness {
    fn new(cfg: CircuitConfig) -> Self {
        Self {
            c: Circuit::new(cfg),
            clock: ManualClock::new(),
            log: vec![],
        }
    }

    fn acquire(&mut self) -> Option<Permit> {
        let now = self.clock.now();
        let log = &mut self.log;
        self.c.try_acquire(now, &mut |t| log.push(t.clone()))
    }

    fn finish(&mut self, p: Permit, v: Verdict) -> bool {
        self.finish_in(p, v, Duration::ZERO)
    }

    /// Records `v` for an attempt that took `latency`.
    fn finish_in(&mut self, p: Permit, v: Verdict, latency: Duration) -> bool {
        let now = self.clock.now();
        let log = &mut self.log;
        self.c
            .on_result(p, v, latency, now, &mut |t| log.push(t.clone()))
    }

    /// One call: acquire, then record `v`. Returns the state after it, or None if rejected.
    fn call(&mut self, v: Verdict) -> Option<StateKind> {
        let p = self.acquire()?;
        self.finish(p, v);
        Some(self.c.state())
    }

    /// Runs a row of results and returns the row of states (`None` = short-circuited).
    fn timeline(&mut self, row: &[Verdict]) -> Vec<Option<StateKind>> {
        row.iter().map(|v| self.call(*v)).collect()
    }
}

use StateKind::{Closed as C, HalfOpen as H, Open as O};

#[test]
fn opens_after_max_failures_consecutive_failures() {
    let mut h = Harness::new(cfg());
    //                      ok        fail     fail     ok       fail     fail     fail      fail
    let states = h.timeline(&[OK, FAIL, FAIL, OK, FAIL, FAIL, FAIL, FAIL]);
    assert_eq!(
        states,
        vec![
            Some(C),
            Some(C),
            Some(C),
            Some(C),
            Some(C),
            Some(C),
            Some(O),
            None
        ]
    );
    assert_eq!(h.log.len(), 1);
    assert_eq!(h.log[0].reason, TransitionReason::ConsecutiveFailures);
    assert_eq!(h.log[0].consecutive_failures, 3);
    assert_eq!(h.c.trips(), 1);
}

#[test]
fn opens_on_percentage_only_past_volume_threshold() {
    let mut c = cfg();
    c.max_failures = 0; // percentage only
    let mut h = Harness::new(c);
    // 9 calls at 66 % failures: below volumeThreshold (10), stays closed.
    for v in [FAIL, FAIL, OK, FAIL, FAIL, OK, FAIL, FAIL, OK] {
        assert_eq!(h.call(v), Some(C));
    }
    // The 10th call reaches the volume threshold with 7/10 failing.
    assert_eq!(h.call(FAIL), Some(O));
    assert_eq!(h.log[0].reason, TransitionReason::FailureRate);
    assert_eq!((h.log[0].failures, h.log[0].calls), (7, 10));
}

#[test]
fn below_threshold_percentage_stays_closed() {
    let mut c = cfg();
    c.max_failures = 0;
    let mut h = Harness::new(c);
    for i in 0..100 {
        let v = if i % 3 == 0 { FAIL } else { OK }; // 34 %
        assert_eq!(h.call(v), Some(C));
    }
}

#[test]
fn old_buckets_leave_the_window_and_stop_counting() {
    let mut c = cfg();
    c.max_failures = 0;
    let mut h = Harness::new(c);
    for _ in 0..9 {
        h.call(FAIL);
    }
    // The 9 failures age out of the 10 s window before the 10th call.
    h.clock.advance(10_000 * MS);
    assert_eq!(h.c.stats(h.clock.now()).failures, 0);
    assert_eq!(h.call(FAIL), Some(C));
}

#[test]
fn open_rejects_until_reset_timeout_then_half_open_admits_exactly_max_calls() {
    let mut h = Harness::new(cfg());
    h.timeline(&[FAIL, FAIL, FAIL]);
    assert_eq!(h.c.state(), O);
    h.clock.advance(999 * MS);
    assert!(h.acquire().is_none(), "still open 1 ms before resetTimeout");
    h.clock.advance(MS);
    let t1 = h.acquire().expect("first trial");
    assert!(t1.is_trial());
    assert_eq!(h.c.state(), H);
    let t2 = h.acquire().expect("second trial");
    assert!(
        h.acquire().is_none(),
        "halfOpenMaxCalls = 2: the third is rejected"
    );
    h.finish(t1, OK);
    assert_eq!(h.c.state(), H, "one success of two is not enough");
    h.finish(t2, OK);
    assert_eq!(h.c.state(), C);
    let reasons: Vec<_> = h.log.iter().map(|t| (t.from, t.to, t.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (C, O, TransitionReason::ConsecutiveFailures),
            (O, H, TransitionReason::ResetTimeoutElapsed),
            (H, C, TransitionReason::TrialsSucceeded),
        ]
    );
    assert_eq!(h.log[1].time_in_previous, 1000 * MS);
}

#[test]
fn a_failed_trial_reopens_as_a_new_trip() {
    let mut h = Harness::new(cfg());
    h.timeline(&[FAIL, FAIL, FAIL]);
    h.clock.advance(1000 * MS);
    let t1 = h.acquire().unwrap();
    let t2 = h.acquire().unwrap();
    assert!(h.finish(t1, FAIL), "a failed trial trips");
    assert_eq!(h.c.state(), O);
    assert_eq!(h.c.trips(), 2);
    // The other trial's late success belongs to the old half-open period: no effect.
    h.finish(t2, OK);
    assert_eq!(h.c.state(), O);
    assert!(h.acquire().is_none());
    h.clock.advance(1000 * MS);
    assert_eq!(h.timeline(&[OK, OK]), vec![Some(H), Some(C)]);
}

#[test]
fn released_trial_frees_its_slot() {
    let mut h = Harness::new(cfg());
    h.timeline(&[FAIL, FAIL, FAIL]);
    h.clock.advance(1000 * MS);
    let t1 = h.acquire().unwrap();
    let _t2 = h.acquire().unwrap();
    assert!(h.acquire().is_none());
    drop(t1);
    assert!(h.acquire().is_some());
}

#[test]
fn a_trial_whose_holder_panics_frees_its_slot() {
    // The wedge of issue 11: a panic between admission and the verdict (a request with
    // more headers than the http crate allows) lost the only trial slot for good.
    let mut c = cfg();
    c.half_open_max_calls = 1;
    let mut h = Harness::new(c);
    h.timeline(&[FAIL, FAIL, FAIL]);
    h.clock.advance(1000 * MS);
    let trial = h.acquire().unwrap();
    assert!(trial.is_trial());
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _held = trial;
        panic!("a bug after admission");
    }));
    assert!(r.is_err());
    assert_eq!(h.c.state(), H);
    assert_eq!(h.timeline(&[OK]), vec![Some(C)], "the slot came back");
}

#[test]
fn a_stale_trial_dropped_late_does_not_free_a_new_period_slot() {
    let mut c = cfg();
    c.half_open_max_calls = 1;
    let mut h = Harness::new(c);
    h.timeline(&[FAIL, FAIL, FAIL]);
    h.clock.advance(1000 * MS);
    let stale = h.acquire().unwrap();
    // Meanwhile the period ends (another path opened it again) and a new one begins.
    h.c.force_open_for_test(h.clock.now());
    h.clock.advance(1000 * MS);
    let current = h.acquire().unwrap();
    drop(stale);
    assert!(
        h.acquire().is_none(),
        "the new period's single slot is still taken"
    );
    drop(current);
    assert!(h.acquire().is_some());
}

#[test]
fn client_errors_are_healthy_answers() {
    let mut h = Harness::new(cfg());
    let states = h.timeline(&[FAIL, FAIL, Verdict::ClientError, FAIL, FAIL]);
    assert!(
        states.iter().all(|s| *s == Some(C)),
        "a 4xx resets the consecutive count"
    );
}

#[test]
fn results_from_before_a_trip_do_not_move_the_new_state() {
    let mut h = Harness::new(cfg());
    let slow = h.acquire().unwrap();
    h.timeline(&[FAIL, FAIL, FAIL]);
    assert_eq!(h.c.state(), O);
    h.clock.advance(1000 * MS);
    let trial = h.acquire().unwrap();
    // A success that started while closed must not count as a trial.
    h.finish(slow, OK);
    assert_eq!(h.c.state(), H);
    h.finish(trial, OK);
    assert_eq!(h.c.state(), H, "one of two trials");
}

#[test]
fn stats_report_the_window_rate_and_none_for_an_empty_window() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.c.stats(h.clock.now()).failure_rate, None);
    h.call(FAIL);
    h.call(OK);
    let s = h.c.stats(h.clock.now());
    assert_eq!(
        s.failure_rate,
        Some(50.0),
        "below volumeThreshold too: a real rate"
    );
    assert_eq!(
        (s.failures, s.fires),
        (1, 0),
        "fires are recorded by the breaker, not the circuit"
    );
}

#[test]
fn concurrent_calls_keep_exact_counts() {
    let mut c = cfg();
    c.max_failures = 0;
    c.error_threshold_percentage = 100;
    c.volume_threshold = 1_000_000;
    let circuit = Arc::new(Circuit::new(c));
    let clock = Arc::new(ManualClock::new());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (circuit, clock) = (circuit.clone(), clock.clone());
            std::thread::spawn(move || {
                for n in 0..5000 {
                    let p = circuit.try_acquire(clock.now(), &mut |_| {}).unwrap();
                    let v = if (n + i) % 2 == 0 { OK } else { FAIL };
                    circuit.on_result(p, v, Duration::ZERO, clock.now(), &mut |_| {});
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = circuit.stats(clock.now());
    assert_eq!(s.successes + s.failures, 20_000);
    assert_eq!(s.successes, 10_000);
    assert_eq!(s.state, C);
}

fn slow_cfg() -> CircuitConfig {
    CircuitConfig {
        slow_call_duration: Some(100 * MS),
        slow_call_rate_threshold: 50,
        max_failures: 0,
        ..cfg()
    }
}

#[test]
fn a_call_of_exactly_the_slow_duration_is_not_slow() {
    let h = Harness::new(slow_cfg());
    assert!(!h.c.is_slow(100 * MS));
    assert!(h.c.is_slow(100 * MS + Duration::from_nanos(1)));
    assert!(!Harness::new(cfg()).c.is_slow(Duration::from_secs(3600)));
}

#[test]
fn successful_slow_calls_open_the_circuit_at_the_rate() {
    let mut h = Harness::new(slow_cfg());
    // 10 successes (volumeThreshold 10): 5 at exactly 100 ms (not slow), 4 just over.
    for i in 0..9 {
        let p = h.acquire().unwrap();
        let latency = if i < 5 { 100 * MS } else { 101 * MS };
        assert!(!h.finish_in(p, OK, latency));
    }
    assert_eq!(h.c.stats(h.clock.now()).slow_calls, 4);
    assert_eq!(h.c.state(), StateKind::Closed);
    // The 10th, slow: 5 of 10 = 50 % >= 50 %, and the volume threshold is met.
    let p = h.acquire().unwrap();
    assert!(h.finish_in(p, OK, 2500 * MS));
    assert_eq!(h.c.state(), StateKind::Open);
    let t = h.log.last().unwrap();
    assert_eq!(t.reason, TransitionReason::SlowCalls);
    assert_eq!(t.reason.as_str(), "slow calls");
    assert_eq!((t.slow_calls, t.calls, t.failures), (5, 10, 0));
    assert_eq!(t.slow_percent, 50.0);
}

#[test]
fn slow_calls_below_the_volume_threshold_do_not_trip() {
    let mut h = Harness::new(slow_cfg());
    for _ in 0..9 {
        let p = h.acquire().unwrap();
        assert!(!h.finish_in(p, OK, 2500 * MS));
    }
    assert_eq!(h.c.state(), StateKind::Closed);
    let s = h.c.stats(h.clock.now());
    assert_eq!((s.slow_calls, s.slow_call_rate), (9, Some(100.0)));
}

#[test]
fn slow_calls_leave_the_window_with_their_bucket() {
    let mut h = Harness::new(slow_cfg());
    for _ in 0..4 {
        let p = h.acquire().unwrap();
        h.finish_in(p, OK, 500 * MS);
    }
    h.clock.advance(10_000 * MS);
    // Four old slow calls have left: six fast ones now are 0 % slow.
    for _ in 0..10 {
        let p = h.acquire().unwrap();
        assert!(!h.finish_in(p, OK, MS));
    }
    assert_eq!(h.c.stats(h.clock.now()).slow_calls, 0);
    assert_eq!(h.c.state(), StateKind::Closed);
}

#[test]
fn slow_failures_count_as_slow_and_off_means_never_slow() {
    let mut h = Harness::new(slow_cfg());
    let p = h.acquire().unwrap();
    h.finish_in(p, Verdict::Failure(FailureKind::Timeout), 3000 * MS);
    assert_eq!(h.c.stats(h.clock.now()).slow_calls, 1);

    let mut off = Harness::new(CircuitConfig {
        max_failures: 0,
        ..cfg()
    });
    for _ in 0..20 {
        let p = off.acquire().unwrap();
        assert!(!off.finish_in(p, OK, Duration::from_secs(60)));
    }
    assert_eq!(off.c.stats(off.clock.now()).slow_calls, 0);
    assert_eq!(off.c.state(), StateKind::Closed);
}

#[test]
fn a_slow_half_open_trial_reopens() {
    let mut h = Harness::new(slow_cfg());
    h.c.force_open_for_test(h.clock.now());
    h.clock.advance(1000 * MS);
    let p = h.acquire().unwrap();
    assert!(p.is_trial());
    // The trial succeeded, but slowly.
    assert!(h.finish_in(p, OK, 150 * MS));
    assert_eq!(h.c.state(), StateKind::Open);
    assert_eq!(h.log.last().unwrap().reason, TransitionReason::SlowCalls);
    // Fast trials close it.
    h.clock.advance(1000 * MS);
    for _ in 0..2 {
        let p = h.acquire().unwrap();
        h.finish_in(p, OK, 5 * MS);
    }
    assert_eq!(h.c.state(), StateKind::Closed);
}

#[test]
fn a_zero_threshold_opens_on_any_failure_past_the_volume_and_never_on_successes() {
    let mut c = cfg();
    c.max_failures = 0;
    c.error_threshold_percentage = 0;
    c.volume_threshold = 3;
    let mut h = Harness::new(c);
    // Successes alone never open it (0 % >= 0 % must not count); a failure opens it once
    // the window holds volumeThreshold calls (the rule runs after every call).
    let states = h.timeline(&[OK, OK, OK, OK]);
    assert_eq!(states, vec![Some(C); 4]);
    let mut h = Harness::new(CircuitConfig {
        volume_threshold: 3,
        ..h.c.cfg.clone()
    });
    // One failure among 3 calls is over 0 %: open, as soon as the window holds 3.
    let states = h.timeline(&[FAIL, OK, OK]);
    assert_eq!(states, vec![Some(C), Some(C), Some(O)]);
    assert_eq!(h.log[0].reason, TransitionReason::FailureRate);
}

#[test]
fn a_caller_rotated_window_moves_on_rotate_only() {
    let mut c = cfg();
    c.max_failures = 0;
    c.rotated_by_caller = true;
    c.rolling_count_buckets = 2;
    c.rolling_count_timeout = 200 * MS;
    let mut h = Harness::new(c);
    h.call(OK);
    // Hours of clock time: the buckets stay put.
    h.clock.advance(Duration::from_secs(3600));
    assert_eq!(h.c.stats(h.clock.now()).successes, 1);
    let b = h.c.buckets(h.clock.now());
    assert_eq!((b.len(), b[0].counts.successes, b[0].fires), (2, 1, 0));
    // One rotation: the success is in the older bucket; two: it left the window.
    assert!(h.c.rotate());
    h.c.record_fire(h.clock.now());
    let b = h.c.buckets(h.clock.now());
    assert_eq!(
        (b[0].counts.successes, b[0].fires, b[1].counts.successes),
        (0, 1, 1)
    );
    assert!(h.c.rotate());
    assert_eq!(h.c.stats(h.clock.now()).successes, 0);
    // A clock-driven circuit has nothing to rotate.
    assert!(!Harness::new(cfg()).c.rotate());
}
