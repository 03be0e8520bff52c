//! The bulkhead in the call path (paused time, scripted upstream): a refused call gets the
//! fallback with ECONCURRENCY and never counts against the circuit, and the slot comes back
//! however a call ends.

use super::tests::{breaker, code_of, config, fire, MS, URL};
use super::*;
use crate::test_support::{Script, Step};

fn inflight(b: &Breaker) -> u32 {
    b.stats().bulkhead.expect("a bulkhead").inflight
}

fn req(b: &Breaker, url: &str) -> PreparedRequest {
    b.prepare(url, None, &[], None).unwrap()
}

/// One call holding the only slot (the upstream hangs) until the returned handle is dropped
/// or aborted.
async fn hold(b: &Arc<Breaker>) -> tokio::task::JoinHandle<CallOutcome> {
    let p = b.admit().unwrap();
    let h = tokio::spawn(b.clone().execute(p, Call::new(req(b, "/held"))));
    tokio::time::sleep(MS).await;
    assert_eq!(inflight(b), 1);
    h
}

fn one_slot(name: &str) -> Config {
    let mut c = config(name, &[("maxConcurrent", 1.0), ("maxAttempts", 1.0)]);
    c.base_url = Some(url::Url::parse("http://127.0.0.1:9/").unwrap());
    c
}

#[tokio::test(start_paused = true)]
async fn over_the_cap_a_get_gets_its_last_known_good_with_econcurrency_and_no_failure() {
    let s = Script::new(vec![
        Step::Reply(200, "application/json", "{\"sigil\":1}"),
        Step::Hang,
    ]);
    let b = breaker(one_slot("t-bulkhead-lkg"), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    let held = hold(&b).await;
    match fire(&b, "GET", URL, &[]).await {
        CallOutcome::Fallback(f) => {
            assert_eq!(f.code, Code::Concurrency);
            assert_eq!(f.code.as_str(), "ECONCURRENCY");
            assert_eq!(f.source, FallbackSource::Cache);
            assert_eq!(&f.body.unwrap()[..], b"{\"sigil\":1}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(s.count(), 2, "the refused call sent nothing");
    let st = b.stats();
    assert_eq!(
        (st.failures, st.successes),
        (0, 1),
        "not a DNAStore failure"
    );
    let bh = st.bulkhead.unwrap();
    assert_eq!((bh.rejected_concurrency, bh.limit, bh.inflight), (1, 1, 1));
    b.refresh_gauges();
    let text = crate::metrics::render();
    assert!(text.contains(
        "dnastore_concurrency_rejections_total{name=\"t-bulkhead-lkg\",reason=\"concurrency\"} 1"
    ));
    assert!(text.contains("dnastore_inflight_requests{name=\"t-bulkhead-lkg\"} 1"));
    assert!(text.contains("dnastore_concurrency_limit{name=\"t-bulkhead-lkg\"} 1"));
    held.abort();
    let _ = held.await;
    assert_eq!(inflight(&b), 0);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn a_refused_half_open_trial_gives_its_trial_slot_back() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused), Step::Hang]);
    let mut c = config(
        "t-bulkhead-trial",
        &[
            ("maxConcurrent", 1.0),
            ("maxAttempts", 1.0),
            ("maxFailures", 1.0),
            ("halfOpenMaxCalls", 1.0),
            ("resetTimeout", 100.0),
        ],
    );
    c.base_url = Some(url::Url::parse("http://127.0.0.1:9/").unwrap());
    let b = breaker(c, &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ECONNREFUSED");
    tokio::time::advance(100 * MS).await;
    // The only slot is taken by the trial... made to wait behind a slot held by hand.
    let limiter = b.limiter.as_ref().unwrap();
    let slot = limiter.acquire(Instant::now() + 1000 * MS).await.unwrap();
    let trial = b.admit().expect("the trial");
    let o = b.clone().execute(trial, Call::new(req(&b, "/x"))).await;
    assert_eq!(code_of(&o), "ECONCURRENCY");
    assert_eq!(
        b.state(),
        StateKind::HalfOpen,
        "a refusal is not a failed trial"
    );
    drop(slot);
    assert!(b.admit().is_some(), "the trial slot came back");
    b.close();
}

#[tokio::test(start_paused = true)]
async fn the_slot_comes_back_on_success_failure_deadline_abort_panic_and_an_unpolled_drop() {
    // Success, then a failure, then hangs (deadline, abort), then a panic.
    let s = Script::new(vec![
        Step::Reply(200, "application/json", "{}"),
        Step::Fail(FailureKind::ConnectionReset),
        Step::Hang,
        Step::Hang,
        Step::Panic,
        Step::Reply(200, "application/json", "{}"),
    ]);
    let b = breaker(one_slot("t-bulkhead-paths"), &s);
    assert_eq!(code_of(&fire(&b, "GET", "/a", &[]).await), "ok");
    assert_eq!(inflight(&b), 0, "success");
    assert_eq!(code_of(&fire(&b, "GET", "/b", &[]).await), "ECONNRESET");
    assert_eq!(inflight(&b), 0, "failure");

    let p = b.admit().unwrap();
    let call = Call {
        deadline: Some(200 * MS),
        ..Call::new(req(&b, "/c"))
    };
    assert_eq!(code_of(&b.clone().execute(p, call).await), "ETIMEDOUT");
    assert_eq!(inflight(&b), 0, "deadline");

    let token = CancellationToken::new();
    let p = b.admit().unwrap();
    let call = Call {
        cancel: Some(token.clone()),
        ..Call::new(req(&b, "/d"))
    };
    let h = tokio::spawn(b.clone().execute(p, call));
    tokio::time::sleep(MS).await;
    assert_eq!(inflight(&b), 1);
    token.cancel();
    assert_eq!(code_of(&h.await.unwrap()), "EABORTED");
    assert_eq!(inflight(&b), 0, "abort");

    assert_eq!(code_of(&fire(&b, "GET", "/e", &[]).await), "EINTERNAL");
    assert_eq!(inflight(&b), 0, "panic");

    // Dropped before its first poll: it never took a slot, and holds nothing.
    let p = b.admit().unwrap();
    drop(b.clone().execute(p, Call::new(req(&b, "/f"))));
    assert_eq!(inflight(&b), 0, "unpolled drop");
    // Dropped while queued or running: covered by the limiter's own tests and the abort.
    assert_eq!(code_of(&fire(&b, "GET", "/g", &[]).await), "ok");
    assert_eq!(b.stats().bulkhead.unwrap().rejected_concurrency, 0);
    b.close();
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_gets_the_slot_or_econcurrency_after_queue_timeout() {
    let s = Script::new(vec![Step::After(
        300 * MS,
        Box::new(Step::Reply(200, "application/json", "{}")),
    )]);
    let mut c = one_slot("t-bulkhead-queue");
    let mut l = c.limit.unwrap();
    l.max_queued = 1;
    l.queue_timeout = 500 * MS;
    c.limit = Some(l);
    let b = breaker(c, &s);
    let first = tokio::spawn({
        let b = b.clone();
        async move { fire(&b, "GET", "/a", &[]).await }
    });
    tokio::time::sleep(MS).await;
    // Waits ~299 ms for the slot, then its own 300 ms call.
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", "/b", &[]).await), "ok");
    assert!(t0.elapsed() >= 500 * MS, "{:?}", t0.elapsed());
    assert_eq!(code_of(&first.await.unwrap()), "ok");
    // Queued behind a 300 ms call with a 100 ms deadline: refused when it expires.
    let first = tokio::spawn({
        let b = b.clone();
        async move { fire(&b, "GET", "/c", &[]).await }
    });
    tokio::time::sleep(MS).await;
    let p = b.admit().unwrap();
    let call = Call {
        deadline: Some(100 * MS),
        ..Call::new(req(&b, "/d"))
    };
    let t0 = Instant::now();
    assert_eq!(code_of(&b.clone().execute(p, call).await), "ECONCURRENCY");
    assert_eq!(t0.elapsed(), 100 * MS);
    assert_eq!(b.stats().bulkhead.unwrap().rejected_queue_timeout, 1);
    first.await.unwrap();
    b.close();
}

#[tokio::test(start_paused = true)]
async fn slow_answers_are_counted_and_trip_the_circuit() {
    let s = Script::new(vec![Step::After(
        250 * MS,
        Box::new(Step::Reply(200, "application/json", "{}")),
    )]);
    let b = breaker(
        config(
            "t-slow-calls",
            &[
                ("slowCallDurationMs", 200.0),
                ("slowCallRateThreshold", 50.0),
                ("volumeThreshold", 4.0),
            ],
        ),
        &s,
    );
    for _ in 0..3 {
        assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    }
    assert_eq!(b.state(), StateKind::Closed);
    // The fourth slow success meets the volume threshold at 100 % slow.
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(b.state(), StateKind::Open);
    let st = b.stats();
    assert_eq!((st.slow_calls, st.failures), (4, 0));
    assert!(crate::metrics::render().contains("dnastore_slow_calls_total{name=\"t-slow-calls\"} 4"));
    b.close();
}

#[tokio::test(start_paused = true)]
async fn a_call_aborted_while_queued_leaves_the_queue() {
    let s = Script::new(vec![Step::Hang]);
    let mut c = one_slot("t-bulkhead-queued-abort");
    let mut l = c.limit.unwrap();
    l.max_queued = 4;
    l.queue_timeout = 10_000 * MS;
    c.limit = Some(l);
    let b = breaker(c, &s);
    let held = hold(&b).await;
    let token = CancellationToken::new();
    let p = b.admit().unwrap();
    let call = Call {
        cancel: Some(token.clone()),
        ..Call::new(req(&b, "/queued"))
    };
    let h = tokio::spawn(b.clone().execute(p, call));
    tokio::time::sleep(MS).await;
    assert_eq!(b.stats().bulkhead.unwrap().queued, 1);
    token.cancel();
    assert_eq!(code_of(&h.await.unwrap()), "EABORTED");
    let st = b.stats().bulkhead.unwrap();
    assert_eq!(
        (st.queued, st.inflight, st.rejected_queue_timeout),
        (0, 1, 0)
    );
    assert_eq!(s.count(), 1, "the aborted call sent nothing");
    held.abort();
    let _ = held.await;
    assert_eq!(inflight(&b), 0);
    b.close();
}
