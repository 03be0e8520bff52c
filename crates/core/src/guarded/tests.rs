//! The guarded circuit on paused tokio time: admission, slots, the bulkhead, warm-up,
//! manual moves, the reset timer's poll, stats and the metric series.

use std::time::Duration;

use super::*;
use crate::config::{RawOptions, RawValue};
use crate::observer::TransitionReason;

const MS: Duration = Duration::from_millis(1);

fn guarded(name: &str, opts: &[(&str, f64)], capacity: Option<usize>, warm_up: bool) -> Guarded {
    let mut o = RawOptions::new()
        .set("resetTimeout", RawValue::Number(100.0))
        .set("volumeThreshold", RawValue::Number(0.0))
        .set("maxFailures", RawValue::Number(0.0))
        .set("halfOpenMaxCalls", RawValue::Number(1.0));
    for (k, v) in opts {
        o.insert(k, RawValue::Number(*v));
    }
    let config = Config::resolve(&o, &|_| None).unwrap();
    let mut c = GuardedConfig::new(&config, name);
    c.capacity = capacity;
    c.warm_up = warm_up;
    Guarded::new(c)
}

fn kinds(g: &Guarded) -> Vec<(StateKind, TransitionReason)> {
    g.take_transitions()
        .into_iter()
        .map(|t| (t.to, t.reason))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn failures_open_then_the_reset_poll_half_opens_and_a_trial_closes() {
    let g = guarded("guarded-cycle", &[], None, false);
    let s = g.admit().unwrap();
    tokio::time::advance(7 * MS).await;
    assert_eq!(g.record(s, Outcome::Success), Some(7 * MS));
    assert!(!g.has_transitions());
    // 1 failure of 2 calls = 50 %: at the threshold.
    let s = g.admit().unwrap();
    g.record(s, Outcome::Failure);
    assert!(g.has_transitions());
    assert_eq!(
        kinds(&g),
        [(StateKind::Open, TransitionReason::FailureRate)]
    );
    assert_eq!(g.admit(), Err(Refusal::Open));
    // The caller's reset timer fired early: still open, 40 ms to go.
    tokio::time::advance(60 * MS).await;
    assert_eq!(g.poll_half_open(), Some(40 * MS));
    tokio::time::advance(40 * MS).await;
    assert_eq!(g.poll_half_open(), None);
    assert_eq!(
        kinds(&g),
        [(StateKind::HalfOpen, TransitionReason::ResetTimeoutElapsed)]
    );
    // One trial; a second call while it runs is refused.
    let trial = g.admit().unwrap();
    assert_eq!(g.admit(), Err(Refusal::Open));
    g.record(trial, Outcome::Success);
    assert_eq!(
        kinds(&g),
        [(StateKind::Closed, TransitionReason::TrialsSucceeded)]
    );
    let st = g.stats();
    assert_eq!(st.circuit.fires, 5, "admitted and refused calls all fire");
    assert_eq!(st.circuit.rejects, 2);
}

#[tokio::test(start_paused = true)]
async fn a_slot_records_once_and_stale_slots_are_ignored() {
    let g = guarded("guarded-once", &[], None, false);
    let s = g.admit().unwrap();
    assert!(g.record(s, Outcome::Timeout).is_some());
    // The action settled after its timeout: nothing more is counted.
    assert_eq!(g.record(s, Outcome::Success), None);
    assert_eq!(g.record(999, Outcome::Success), None);
    let st = g.stats();
    assert_eq!(
        (
            st.circuit.failures,
            st.circuit.timeouts,
            st.circuit.successes
        ),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_refuses_past_the_bulkhead_and_gives_a_trial_back() {
    let g = guarded("guarded-capacity", &[], Some(2), false);
    let a = g.admit().unwrap();
    let b = g.admit().unwrap();
    assert_eq!(g.admit(), Err(Refusal::Capacity));
    assert_eq!(g.running(), 2);
    g.record(a, Outcome::Success);
    let c = g.admit().unwrap();
    assert_eq!(c, a, "a freed slot is reused");
    g.record(b, Outcome::Success);
    g.record(c, Outcome::Success);
    assert_eq!(g.stats().semaphore_rejections, 1);
    // Not a failure: a full bulkhead says nothing about the action's health.
    assert_eq!(g.stats().circuit.failures, 0);

    // Half-open, bulkhead full: the refused trial's slot comes back for the next call.
    let g = guarded("guarded-capacity-trial", &[], Some(1), false);
    let held = g.admit().unwrap();
    g.force(StateKind::HalfOpen);
    assert_eq!(g.admit(), Err(Refusal::Capacity));
    g.record(held, Outcome::Success); // stale: from the closed period
    assert_eq!(g.state(), StateKind::HalfOpen);
    let trial = g.admit().unwrap();
    g.record(trial, Outcome::Success);
    assert_eq!(g.state(), StateKind::Closed);
}

#[tokio::test(start_paused = true)]
async fn warm_up_holds_the_circuit_closed_for_one_window() {
    let g = guarded(
        "guarded-warm",
        &[("rollingCountTimeout", 1000.0)],
        None,
        true,
    );
    assert!(g.warming_up());
    for _ in 0..5 {
        let s = g.admit().unwrap();
        g.record(s, Outcome::Failure);
    }
    assert_eq!(g.state(), StateKind::Closed);
    tokio::time::advance(1000 * MS).await;
    assert!(!g.warming_up());
    let s = g.admit().unwrap();
    g.record(s, Outcome::Failure);
    assert_eq!(g.state(), StateKind::Open);
}

#[tokio::test(start_paused = true)]
async fn filtered_errors_are_healthy_and_manual_moves_are_transitions() {
    let g = guarded("guarded-filter", &[], None, false);
    for _ in 0..3 {
        let s = g.admit().unwrap();
        g.record(s, Outcome::Filtered);
    }
    assert_eq!(g.state(), StateKind::Closed);
    assert_eq!(g.stats().circuit.client_errors, 3);
    assert!(g.force(StateKind::Open));
    assert!(!g.force(StateKind::Open), "already open");
    assert!(g.force(StateKind::Closed));
    assert_eq!(
        kinds(&g),
        [
            (StateKind::Open, TransitionReason::Manual),
            (StateKind::Closed, TransitionReason::Manual)
        ]
    );
    // A manual close starts a clean window.
    assert_eq!(g.stats().circuit.client_errors, 0);
}

#[tokio::test(start_paused = true)]
async fn stats_latency_notes_and_shutdown() {
    let g = guarded("guarded-stats", &[], None, false);
    for ms in [10u32, 20, 30, 40] {
        let s = g.admit().unwrap();
        tokio::time::advance(ms * MS).await;
        g.record(s, Outcome::Success);
    }
    for n in [
        Note::CacheHit,
        Note::CacheMiss,
        Note::CoalesceHit,
        Note::CoalesceMiss,
        Note::Fallback,
        Note::Fire,
    ] {
        g.note(n);
    }
    let st = g.stats();
    assert_eq!(st.latency_mean_ms, 25.0);
    assert_eq!(st.percentiles_ms[0], 10.0);
    assert_eq!(st.percentiles_ms[2], 20.0, "p50 of 4: the 2nd");
    assert_eq!(st.percentiles_ms[8], 40.0);
    assert_eq!(
        (
            st.cache_hits,
            st.cache_misses,
            st.coalesce_hits,
            st.coalesce_misses
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(st.circuit.fires, 7);
    assert_eq!(st.circuit.fallbacks, 1);
    // With a fallback function, an open circuit's refusal counts its fallback itself.
    g.set_fallback_on_refusal(true);
    g.force(StateKind::Open);
    assert_eq!(g.admit(), Err(Refusal::Open));
    assert_eq!(g.stats().circuit.fallbacks, 2);
    g.force(StateKind::Closed);
    let text = crate::metrics::render();
    assert!(
        text.contains("dnastore_requests_total{name=\"guarded-stats\",outcome=\"success\"} 4"),
        "{text}"
    );
    let running = g.admit().unwrap();
    g.shutdown();
    assert_eq!(g.admit(), Err(Refusal::Shutdown));
    assert!(!crate::metrics::render().contains("guarded-stats"));
    // A call admitted before the shutdown still ends as it would have, once.
    tokio::time::advance(3 * MS).await;
    assert_eq!(g.record(running, Outcome::Success), Some(3 * MS));
    assert_eq!(g.record(running, Outcome::Success), None);
    assert!(!crate::metrics::render().contains("guarded-stats"));
}

#[test]
fn any_name_becomes_a_valid_label() {
    assert_eq!(metric_label("bound fetchUser"), "bound_fetchUser");
    assert_eq!(metric_label(""), "circuit");
    assert_eq!(metric_label(&"x".repeat(100)).len(), 64);
    assert_eq!(metric_label("a1b2-uuid:ok.v_2"), "a1b2-uuid:ok.v_2");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_the_error_filter_accepts_counts_as_a_timeout_but_never_opens() {
    let g = guarded("guarded-filtered-timeout", &[], None, false);
    for _ in 0..3 {
        let s = g.admit().unwrap();
        g.record(s, Outcome::FilteredTimeout);
    }
    let st = g.stats();
    assert_eq!(st.circuit.state, StateKind::Closed);
    assert_eq!((st.circuit.failures, st.circuit.timeouts), (0, 3));
    assert!(kinds(&g).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_caller_rotated_window_moves_on_rotate_and_lists_its_buckets() {
    let config = Config::resolve(
        &RawOptions::new()
            .set("rollingCountTimeout", RawValue::Number(200.0))
            .set("rollingCountBuckets", RawValue::Number(2.0))
            .set("maxFailures", RawValue::Number(0.0)),
        &|_| None,
    )
    .unwrap();
    let mut c = GuardedConfig::new(&config, "guarded-rotated");
    c.circuit.rotated_by_caller = true;
    let g = Guarded::new(c);
    let s = g.admit().unwrap();
    g.record(s, Outcome::Success);
    g.note(Note::CacheMiss);
    tokio::time::advance(Duration::from_secs(60)).await;
    let b = g.buckets();
    assert_eq!(b.len(), 2);
    assert_eq!(
        (
            b[0].circuit.fires,
            b[0].circuit.counts.successes,
            b[0].cache_misses
        ),
        (1, 1, 1)
    );
    assert!(g.rotate());
    let s = g.admit().unwrap();
    g.record(s, Outcome::FilteredTimeout);
    let b = g.buckets();
    assert_eq!(
        (
            b[0].circuit.counts.timeouts,
            b[0].circuit.counts.client_errors
        ),
        (1, 1)
    );
    assert_eq!((b[1].circuit.counts.successes, b[1].cache_misses), (1, 1));
    assert!(g.rotate());
    assert_eq!(g.buckets()[1].circuit.counts.successes, 0);
    assert_eq!(g.stats().circuit.successes, 0);
    // A clock-driven window rotates on time and refuses a caller's rotation.
    assert!(!guarded("guarded-timed", &[], None, false).rotate());
}

fn failure_rate_line(name: &str) -> Option<String> {
    let prefix = format!("dnastore_circuit_failure_rate{{name=\"{name}\"}} ");
    crate::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[tokio::test(start_paused = true)]
async fn the_failure_rate_gauge_shows_the_rate_that_opened_it_without_a_stats_call() {
    let g = Guarded::shared(GuardedConfig::new(
        &Config::resolve(
            &RawOptions::new()
                .set("maxFailures", RawValue::Number(0.0))
                .set("volumeThreshold", RawValue::Number(4.0))
                .set("rollingCountTimeout", RawValue::Number(1000.0)),
            &|_| None,
        )
        .unwrap(),
        "guarded-rate",
    ));
    for outcome in [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Failure,
        Outcome::Failure,
    ] {
        let s = g.admit().unwrap();
        g.record(s, outcome);
    }
    assert_eq!(g.state(), StateKind::Open);
    assert_eq!(failure_rate_line("guarded-rate").as_deref(), Some("75"));
    // The window empties while open: a scrape keeps the rate that opened it.
    tokio::time::advance(Duration::from_secs(5)).await;
    refresh_gauges();
    assert_eq!(failure_rate_line("guarded-rate").as_deref(), Some("75"));
    g.shutdown();
}
