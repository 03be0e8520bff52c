//! Manual control through the breaker: forced open answers with the fallback without I/O
//! and settles calls waiting to retry, disabled sends every call and never trips, and
//! `circuitForce` applies once at startup. Paused tokio time, scripted upstream.

use super::super::tests::{breaker, code_of, config, fire, Recorder, MS, URL};
use super::super::*;
use crate::circuit::{Control, Forced};
use crate::config::{RawOptions, RawValue};
use crate::test_support::{Script, Step};

#[tokio::test(start_paused = true)]
async fn forced_open_serves_fallbacks_without_io_until_closed() {
    let s = Script::new(vec![Step::Reply(200, "application/json", "{}")]);
    let b = breaker(config("t-force-open", &[("resetTimeout", 100.0)]), &s);
    let rec = Arc::new(Recorder::default());
    b.subscribe(rec.clone());
    assert!(b.control(Control::Open));
    assert_eq!(b.state(), StateKind::ForcedOpen);
    assert_eq!(b.forced(), Some(Forced::Open));
    tokio::time::sleep(10_000 * MS).await;
    for _ in 0..3 {
        assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EOPENBREAKER");
    }
    assert_eq!(s.count(), 0, "no trial, long past resetTimeout");
    b.refresh_gauges();
    assert_eq!(b.stats().state, StateKind::ForcedOpen);
    assert!(b.control(Control::Close));
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(
        rec.events(),
        vec![
            "closed->forcedOpen",
            "reject",
            "fallback:EOPENBREAKER:none",
            "reject",
            "fallback:EOPENBREAKER:none",
            "reject",
            "fallback:EOPENBREAKER:none",
            "forcedOpen->closed",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn forcing_open_settles_a_call_waiting_to_retry_at_once() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "t-force-retry",
            &[
                ("maxAttempts", 3.0),
                ("retryBaseMs", 500.0),
                ("retryMaxMs", 500.0),
            ],
        ),
        &s,
    );
    let started = Instant::now();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { (fire(&b, "GET", URL, &[]).await, started.elapsed()) }
    });
    tokio::time::sleep(10 * MS).await;
    assert!(b.control(Control::Open));
    let (o, took) = waiting.await.unwrap();
    assert_eq!(code_of(&o), "EOPENBREAKER");
    assert!(
        took < 20 * MS,
        "settled at the force, not after the backoff: {took:?}"
    );
    assert_eq!(s.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn disabled_sends_every_call_counts_it_and_never_trips() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "t-force-disabled",
            &[("maxFailures", 2.0), ("maxAttempts", 1.0)],
        ),
        &s,
    );
    assert!(b.control(Control::Disable));
    for _ in 0..10 {
        assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ECONNREFUSED");
    }
    assert_eq!(s.count(), 10, "every call reached DNAStore");
    let st = b.stats();
    assert_eq!(
        (st.state, st.failures, st.trips),
        (StateKind::Disabled, 10, 0)
    );
    assert!(b.control(Control::Enable));
    assert_eq!(b.state(), StateKind::Closed);
}

fn config_env(name: &str, force: &str) -> Result<Config, crate::config::ConfigError> {
    let o = RawOptions::new().set("name", RawValue::String(name.into()));
    let force = force.to_string();
    Config::resolve(&o, &move |k: &str| {
        (k == "DNASTORE_CIRCUIT_FORCE").then(|| force.clone())
    })
}

#[tokio::test(start_paused = true)]
async fn circuit_force_applies_once_at_start() {
    let s = Script::new(vec![Step::Reply(200, "application/json", "{}")]);
    let b = breaker(config_env("t-force-env", "open").unwrap(), &s);
    assert_eq!(
        b.state(),
        StateKind::Closed,
        "applied at start, once observed"
    );
    b.start();
    assert_eq!(b.state(), StateKind::ForcedOpen);
    assert!(b.control(Control::Close));
    // Another handle joining the breaker starts it again: the operator's close stands.
    b.start();
    assert_eq!(b.state(), StateKind::Closed);
    let d = breaker(config_env("t-force-env-d", " Disabled ").unwrap(), &s);
    d.start();
    assert_eq!(d.state(), StateKind::Disabled);
}

#[test]
fn circuit_force_rejects_other_values_naming_the_variable() {
    let e = config_env("t-force-bad", "closed").unwrap_err();
    assert_eq!(e.key, "DNASTORE_CIRCUIT_FORCE");
    assert!(
        e.message.contains("none, open or disabled"),
        "{}",
        e.message
    );
    let o = RawOptions::new()
        .set("name", RawValue::String("t".into()))
        .set("circuitForce", RawValue::String("half".into()));
    let e = Config::resolve(&o, &|_| None).unwrap_err();
    assert_eq!(e.key, "circuitForce");
}
