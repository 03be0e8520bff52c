//! Hedged reads in the call path (paused time, scripted upstream): which calls are hedged,
//! what a hedge may take, and how a hedged attempt meets the circuit, retries, the
//! bulkhead, coalescing, the cache and the timeout (decisions in `hedge/mod.rs`).

use super::tests::{breaker, code_of, fire, MS, URL};
use super::*;
use crate::config::{RawOptions, RawValue};
use crate::test_support::{Script, Step};

fn hedged(name: &str, opts: &[(&str, RawValue)]) -> Config {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("hedgeAfterMs", RawValue::Number(25.0));
    for (k, v) in opts {
        o.insert(k, v.clone());
    }
    Config::resolve(&o, &|_| None).unwrap()
}

fn n(v: f64) -> RawValue {
    RawValue::Number(v)
}

fn slow(ms: u32, body: &'static str) -> Step {
    Step::After(
        ms * MS,
        Box::new(Step::Reply(200, "application/json", body)),
    )
}

/// Hedge events as `result[:reason]@after_ms`.
#[derive(Default)]
struct Hedges(Mutex<Vec<String>>);

impl Observer for Hedges {
    fn on_event(&self, e: &Event<'_>) {
        if let Event::Hedge {
            result,
            after,
            skip,
            ..
        } = e
        {
            let why = skip.map(|s| format!(":{}", s.as_str())).unwrap_or_default();
            self.0
                .lock()
                .push(format!("{}{why}@{}", result.as_str(), after.as_millis()));
        }
    }
}

fn watch(b: &Arc<Breaker>) -> Arc<Hedges> {
    let h = Arc::new(Hedges::default());
    b.subscribe(h.clone());
    h
}

fn body(o: &CallOutcome) -> &[u8] {
    match o {
        CallOutcome::Ok(s) => &s.body,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_read_is_hedged_the_first_answer_wins_and_the_other_copy_is_dropped() {
    for method in ["GET", "HEAD"] {
        let s = Script::new(vec![slow(300, "[0]"), slow(2, "[1]")]);
        let b = breaker(hedged(&format!("t-hedge-win-{method}"), &[]), &s);
        let ev = watch(&b);
        let t0 = Instant::now();
        let o = fire(&b, method, URL, &[]).await;
        assert_eq!(body(&o), b"[1]", "{method}");
        assert_eq!(
            t0.elapsed(),
            27 * MS,
            "{method}: the hedge's answer, not the first copy's"
        );
        assert_eq!(
            (s.count(), s.dropped()),
            (2, 1),
            "{method}: the loser was dropped"
        );
        assert_eq!(ev.0.lock().clone(), vec!["won@25"]);
        let st = b.stats();
        // One verdict for the attempt group; the losing copy is no failure.
        assert_eq!((st.successes, st.failures, st.fires), (1, 0, 1));
        assert_eq!(
            st.hedges,
            Some(crate::circuit::HedgeStats {
                won: 1,
                lost: 0,
                skipped: 0
            })
        );
        let text = crate::metrics::render();
        let name = format!("t-hedge-win-{method}");
        assert!(text.contains(&format!(
            "dnastore_hedges_total{{name=\"{name}\",result=\"won\"}} 1"
        )));
        b.close();
        assert!(!crate::metrics::render().contains(&format!("name=\"{name}\",result")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_that_loses_is_counted_lost_and_a_fast_read_sends_none() {
    let s = Script::new(vec![slow(40, "[0]"), slow(100, "[1]"), slow(5, "[2]")]);
    let b = breaker(hedged("t-hedge-lost", &[]), &s);
    let ev = watch(&b);
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[0]");
    assert_eq!((s.count(), s.dropped()), (2, 1));
    assert_eq!(ev.0.lock().clone(), vec!["lost@25"]);
    // Answered within the delay: no hedge.
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[2]");
    assert_eq!(s.count(), 3);
    let h = b.stats().hedges.unwrap();
    assert_eq!((h.won, h.lost, h.skipped), (0, 1, 0));
}

/// Every write method, with and without an Idempotency-Key, never gets a second copy: each
/// would be a second write.
#[tokio::test(start_paused = true)]
async fn writes_are_never_hedged_keyed_or_not() {
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        // No key; the caller's key; a key the breaker generates (POST and PATCH).
        for (variant, key, generate) in [
            ("plain", None, false),
            ("keyed", Some("k-1"), false),
            ("generated", None, true),
        ] {
            let s = Script::new(vec![slow(300, "{}"), slow(1, "{}")]);
            let name = format!("t-hedge-write-{method}-{variant}");
            let b = breaker(
                hedged(
                    &name,
                    &[("generateIdempotencyKeys", RawValue::Bool(generate))],
                ),
                &s,
            );
            let ev = watch(&b);
            let headers: Vec<(&str, &str)> = key.iter().map(|k| ("idempotency-key", *k)).collect();
            let o = fire(&b, method, URL, &headers).await;
            assert_eq!(code_of(&o), "ok", "{method} {variant}");
            assert_eq!(s.count(), 1, "{method} {variant}: one request, no hedge");
            assert!(
                ev.0.lock().is_empty(),
                "{method} {variant}: not even skipped"
            );
            assert_eq!(
                b.stats().hedges.map(|h| h.won + h.lost + h.skipped),
                Some(0)
            );
        }
    }
}

/// Durable writes (the outbox), keyed by the outbox itself, are not hedged either.
#[tokio::test(start_paused = true)]
async fn durable_writes_are_never_hedged() {
    let dir = std::env::temp_dir().join(format!("dnastore-hedge-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (i, method) in ["POST", "PUT", "PATCH", "DELETE"].into_iter().enumerate() {
        let s = Script::new(vec![slow(300, "{}"), slow(1, "{}")]);
        let cfg = hedged(
            &format!("t-hedge-durable-{i}"),
            &[
                ("outbox", RawValue::String("on".into())),
                ("outboxDir", RawValue::String(dir.display().to_string())),
            ],
        );
        let b = breaker(cfg, &s);
        let ev = watch(&b);
        let req = b
            .prepare(URL, Some(method), &[], Some(Bytes::from_static(b"{}")))
            .unwrap();
        let mut call = Call::new(req);
        b.make_durable(&mut call, None).unwrap();
        let o = b.clone().execute(b.admit().unwrap(), call).await;
        assert_eq!(code_of(&o), "ok", "{method}");
        assert_eq!(s.count(), 1, "{method}: one request, no hedge");
        assert!(ev.0.lock().is_empty(), "{method}");
        b.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn with_the_retry_budget_spent_no_hedge_is_sent() {
    let s = Script::new(vec![slow(300, "[0]")]);
    let cfg = hedged(
        "t-hedge-budget",
        &[("retryBudgetPercent", n(0.0)), ("retryMinPerSec", n(1.0))],
    );
    let b = breaker(cfg, &s);
    let ev = watch(&b);
    // The budget grants 1/s over its 10 s window: 10 hedges, then none.
    for _ in 0..15 {
        assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    }
    assert_eq!(s.count(), 15 + 10, "10 hedges, within the budget");
    let h = b.stats().hedges.unwrap();
    assert_eq!((h.lost, h.skipped), (10, 5));
    assert_eq!(ev.0.lock().last().unwrap(), "skipped:budget@25");
}

#[tokio::test(start_paused = true)]
async fn hedges_take_a_bulkhead_slot_of_their_own_and_are_skipped_without_one() {
    // One slot: the call holds it, so its hedge finds none.
    let s = Script::new(vec![slow(300, "[0]")]);
    let b = breaker(
        hedged("t-hedge-bulkhead-1", &[("maxConcurrent", n(1.0))]),
        &s,
    );
    let ev = watch(&b);
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[0]");
    assert_eq!(s.count(), 1);
    assert_eq!(ev.0.lock().clone(), vec!["skipped:bulkhead@25"]);
    // Two slots: the hedge holds the second while it runs, and gives it back when dropped.
    let s = Script::new(vec![Step::Hang, Step::Hang, slow(1, "[2]")]);
    let b = breaker(
        hedged(
            "t-hedge-bulkhead-2",
            &[
                ("maxConcurrent", n(2.0)),
                ("timeout", n(100.0)),
                ("maxAttempts", n(1.0)),
            ],
        ),
        &s,
    );
    let call = tokio::spawn({
        let b = b.clone();
        async move { fire(&b, "GET", URL, &[]).await }
    });
    tokio::time::sleep(30 * MS).await;
    assert_eq!(
        b.stats().bulkhead.unwrap().inflight,
        2,
        "the call and its hedge"
    );
    // Meanwhile another call finds the bulkhead full: the hedge counts like any request.
    let o = fire(&b, "GET", "http://127.0.0.1:9/other", &[]).await;
    assert_eq!(code_of(&o), "ECONCURRENCY");
    assert_eq!(code_of(&call.await.unwrap()), "ETIMEDOUT");
    assert_eq!(
        b.stats().bulkhead.unwrap().inflight,
        0,
        "every slot came back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_trial_is_never_hedged() {
    let s = Script::new(vec![slow(300, "[0]")]);
    let b = breaker(
        hedged("t-hedge-half-open", &[("resetTimeout", n(1000.0))]),
        &s,
    );
    let ev = watch(&b);
    b.circuit.force_open_for_test(b.now());
    tokio::time::sleep(1000 * MS).await;
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[0]");
    assert_eq!(s.count(), 1);
    assert_eq!(ev.0.lock().clone(), vec!["skipped:circuit@25"]);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_group_is_one_attempt_for_the_circuit_and_the_retries() {
    // Attempt 1: both copies fail (the first after its hedge went out); attempt 2 answers.
    let s = Script::new(vec![
        Step::After(40 * MS, Box::new(Step::Reply(503, "text/plain", ""))),
        Step::After(30 * MS, Box::new(Step::Fail(FailureKind::ConnectionReset))),
        Step::Reply(200, "application/json", "[2]"),
    ]);
    let b = breaker(hedged("t-hedge-group", &[("maxAttempts", n(2.0))]), &s);
    let rec = Arc::new(super::tests::Recorder::default());
    b.subscribe(rec.clone());
    let trace = Arc::new(crate::CallTrace::default());
    let req = b.prepare(URL, Some("GET"), &[], None).unwrap();
    let call = Call {
        trace: Some(trace.clone()),
        ..Call::new(req)
    };
    let o = b.clone().execute(b.admit().unwrap(), call).await;
    assert_eq!(body(&o), b"[2]");
    assert_eq!(s.count(), 3);
    let ev = rec.events();
    assert_eq!(ev.len(), 1, "one retry: {ev:?}");
    // The group's failure is the one that says most: DNAStore's 503, not the reset.
    assert!(
        ev[0].starts_with("retry#1:") && ev[0].ends_with("upstream_error"),
        "{ev:?}"
    );
    let st = b.stats();
    assert_eq!(
        (st.failures, st.successes, st.retries),
        (1, 1, 1),
        "one verdict per group"
    );
    let t = trace.take();
    assert_eq!(t.attempts, 2);
    assert_eq!(t.hedges.len(), 1);
    let h = t.hedges[0];
    assert_eq!(
        (h.attempt, h.result, h.at, h.skip),
        (1, crate::HedgeResult::Lost, 25 * MS, None)
    );
}

#[tokio::test(start_paused = true)]
async fn coalesced_followers_are_not_hedged_only_their_leader() {
    let s = Script::new(vec![slow(300, "[0]"), slow(2, "[1]")]);
    let b = breaker(hedged("t-hedge-coalesce", &[]), &s);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { fire(&b, "GET", URL, &[]).await })
        })
        .collect();
    for c in calls {
        assert_eq!(body(&c.await.unwrap()), b"[1]");
    }
    assert_eq!(s.count(), 2, "the leader and its one hedge");
    assert_eq!(b.stats().hedges.unwrap().won, 1);
}

#[tokio::test(start_paused = true)]
async fn only_the_winners_body_is_cached() {
    let s = Script::new(vec![
        slow(300, "[\"first\"]"),
        slow(2, "[\"hedge\"]"),
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(hedged("t-hedge-lkg", &[("maxAttempts", n(1.0))]), &s);
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[\"hedge\"]");
    match fire(&b, "GET", URL, &[]).await {
        CallOutcome::Fallback(f) => {
            assert_eq!(f.source, FallbackSource::Cache);
            assert_eq!(&f.body.unwrap()[..], b"[\"hedge\"]");
        }
        o => panic!("{o:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_bounds_the_whole_group() {
    let s = Script::new(vec![Step::Hang]);
    let cfg = hedged(
        "t-hedge-timeout",
        &[("timeout", n(100.0)), ("maxAttempts", n(1.0))],
    );
    let b = breaker(cfg, &s);
    let ev = watch(&b);
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ETIMEDOUT");
    assert_eq!(
        t0.elapsed(),
        100 * MS,
        "the hedge did not extend the attempt"
    );
    assert_eq!((s.count(), s.dropped()), (2, 2));
    assert_eq!(ev.0.lock().clone(), vec!["lost@25"]);
    assert_eq!(b.stats().timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_call_drops_every_copy() {
    let s = Script::new(vec![Step::Hang]);
    let b = breaker(hedged("t-hedge-abort", &[("maxConcurrent", n(4.0))]), &s);
    let cancel = CancellationToken::new();
    let req = b.prepare(URL, Some("GET"), &[], None).unwrap();
    let call = Call {
        cancel: Some(cancel.clone()),
        ..Call::new(req)
    };
    let run = tokio::spawn(b.clone().execute(b.admit().unwrap(), call));
    tokio::time::sleep(40 * MS).await;
    assert_eq!(s.count(), 2);
    assert_eq!(
        b.stats().bulkhead.unwrap().inflight,
        2,
        "the call and its hedge"
    );
    cancel.cancel();
    assert_eq!(code_of(&run.await.unwrap()), "EABORTED");
    assert_eq!(s.dropped(), 2);
    assert_eq!(
        b.stats().bulkhead.unwrap().inflight,
        0,
        "both slots came back"
    );
}

#[tokio::test(start_paused = true)]
async fn auto_hedges_at_the_learned_p95_once_it_has_enough_samples() {
    let learn = crate::hedge::AUTO_MIN_SAMPLES as usize;
    let mut steps: Vec<Step> = (0..learn).map(|_| slow(2, "[0]")).collect();
    steps.extend([slow(300, "[1]"), slow(300, "[2]"), slow(1, "[3]")]);
    let s = Script::new(steps);
    let cfg = hedged(
        "t-hedge-auto",
        &[("hedgeAfterMs", RawValue::String("auto".into()))],
    );
    let b = breaker(cfg, &s);
    let ev = watch(&b);
    for _ in 0..learn - 1 {
        fire(&b, "GET", URL, &[]).await;
    }
    // Still learning: a slow read now is not hedged.
    tokio::time::sleep(100 * MS).await;
    fire(&b, "GET", URL, &[]).await;
    assert!(ev.0.lock().is_empty());
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[1]");
    assert!(ev.0.lock().is_empty(), "not hedged while learning");
    // Learned (a p95 of ~2 ms, so the floor): the next slow read is hedged at 10 ms.
    tokio::time::sleep(100 * MS).await;
    let t0 = Instant::now();
    assert_eq!(body(&fire(&b, "GET", URL, &[]).await), b"[3]");
    assert_eq!(t0.elapsed(), 11 * MS);
    assert_eq!(ev.0.lock().clone(), vec!["won@10"]);
}
