//! The open period through the breaker, on paused tokio time with a scripted upstream:
//! Retry-After on the answer that trips holds the circuit open that long (capped by
//! retryAfterMaxMs), and failed trials grow the open period up to resetTimeoutMax.

use super::tests::{breaker, code_of, config, fire, MS, URL};
use super::*;
use crate::config::{RawOptions, RawValue};
use crate::test_support::{Script, Step};

#[tokio::test(start_paused = true)]
async fn retry_after_on_the_tripping_answer_keeps_the_circuit_open_that_long() {
    let s = Script::new(vec![Step::ReplyRetryAfter(503, "30")]);
    let opts = [
        ("maxFailures", 1.0),
        ("maxAttempts", 1.0),
        ("resetTimeout", 1000.0),
        ("retryAfterMaxMs", 60_000.0),
    ];
    let b = breaker(config("t-ra-trip", &opts), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EUPSTREAM");
    assert_eq!(b.open_for(), Some(30_000 * MS));
    tokio::time::sleep(29_999 * MS).await;
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EOPENBREAKER");
    assert_eq!(s.count(), 1, "no trial before Retry-After");
    tokio::time::sleep(MS).await;
    // The trial fails with Retry-After again: open that long again.
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EUPSTREAM");
    assert_eq!(b.open_for(), Some(30_000 * MS));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_by_retry_after_max() {
    let s = Script::new(vec![Step::ReplyRetryAfter(429, "3600")]);
    let opts = [
        ("maxFailures", 1.0),
        ("maxAttempts", 1.0),
        ("resetTimeout", 1000.0),
        ("retryAfterMaxMs", 5000.0),
    ];
    let b = breaker(config("t-ra-cap", &opts), &s);
    fire(&b, "GET", URL, &[]).await;
    assert_eq!(b.open_for(), Some(5000 * MS));
}

#[tokio::test(start_paused = true)]
async fn failed_trials_grow_the_open_period_up_to_reset_timeout_max() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let opts = [
        ("maxFailures", 1.0),
        ("maxAttempts", 1.0),
        ("halfOpenMaxCalls", 1.0),
        ("resetTimeout", 100.0),
        ("resetTimeoutMax", 1000.0),
    ];
    let b = breaker(config("t-grow", &opts), &s);
    let mut periods = vec![];
    for _ in 0..6 {
        fire(&b, "GET", URL, &[]).await;
        let p = b.open_for().expect("open");
        periods.push(p);
        tokio::time::sleep(p).await;
    }
    assert_eq!(periods[0], 100 * MS, "the first trip: resetTimeout");
    for (i, p) in periods.iter().enumerate().skip(1) {
        let grown = (100 * MS * (1 << i)).min(1000 * MS);
        // Jittered to between half and all of it, never below resetTimeout.
        assert!(
            *p <= grown && *p >= (grown / 2).max(100 * MS),
            "trial {i}: {p:?} for {grown:?}"
        );
    }
    assert!(periods[5] >= 500 * MS, "capped, still long: {periods:?}");
}

#[test]
fn reset_timeout_max_below_reset_timeout_is_econfig_naming_both() {
    let o = RawOptions::new()
        .set("name", RawValue::String("t".into()))
        .set("resetTimeout", RawValue::Number(10_000.0))
        .set("resetTimeoutMax", RawValue::Number(5000.0));
    let e = Config::resolve(&o, &|_| None).unwrap_err();
    assert_eq!(e.key, "resetTimeoutMax");
    assert!(
        e.message.contains("resetTimeout (10000 ms)"),
        "{}",
        e.message
    );
    let env = |k: &str| (k == "DNASTORE_CIRCUIT_RESET_MAX_MS").then(|| "0".to_string());
    let c = Config::resolve(&RawOptions::new(), &env).unwrap();
    assert_eq!(c.reset_timeout_max, c.reset_timeout, "0: off");
}
