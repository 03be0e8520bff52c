//! The call path with paused tokio time and a scripted upstream: attempts, delays,
//! deadlines, budgets, fallbacks, coalescing, and panics, without a real sleep.

use super::*;
use crate::config::{RawOptions, RawValue};
use crate::test_support::{Script, Step};

pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn config(name: &str, opts: &[(&str, f64)]) -> Config {
    let mut o = RawOptions::new().set("name", RawValue::String(name.into()));
    for (k, v) in opts {
        o.insert(k, RawValue::Number(*v));
    }
    Config::resolve(&o, &|_| None).unwrap()
}

pub(super) fn breaker(cfg: Config, script: &Arc<Script>) -> Arc<Breaker> {
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(1)),
        wall_origin: SystemTime::now(),
        runtime: None,
    };
    Breaker::with_transport(cfg, deps, Transport::Script(script.clone()))
        .expect("no outbox to open")
}

/// Records events in order.
#[derive(Default)]
pub(super) struct Recorder(Mutex<Vec<String>>);

impl Observer for Recorder {
    fn on_event(&self, e: &Event<'_>) {
        let s = match e {
            Event::Transition(t) => format!("{}->{}", t.from.as_str(), t.to.as_str()),
            Event::Retry {
                attempt,
                delay,
                reason,
            } => format!("retry#{attempt}:{}:{}", delay.as_millis(), reason.label()),
            Event::RetryBudgetExhausted => "budget".into(),
            Event::Fallback { code, source, .. } => format!("fallback:{code}:{}", source.as_str()),
            Event::Coalesced => "coalesced".into(),
            Event::Reject => "reject".into(),
            _ => return,
        };
        self.0.lock().push(s);
    }
}

impl Recorder {
    pub(super) fn events(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

pub(super) async fn fire(
    b: &Arc<Breaker>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> CallOutcome {
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = (method == "POST").then(|| Bytes::from_static(b"{}"));
    let req = b.prepare(url, Some(method), &h, body).unwrap();
    match b.admit() {
        Some(p) => b.clone().execute(p, Call::new(req)).await,
        None => CallOutcome::Fallback(b.rejected(Some(&req))),
    }
}

pub(super) fn code_of(o: &CallOutcome) -> &'static str {
    match o {
        CallOutcome::Ok(_) => "ok",
        CallOutcome::Fallback(f) => f.code.as_str(),
        CallOutcome::Rejected(r) => r.code.as_str(),
        CallOutcome::Queued(_) => "queued",
    }
}

pub(super) const URL: &str = "http://127.0.0.1:9/api/sigils";

#[tokio::test(start_paused = true)]
async fn fails_twice_then_succeeds_with_three_attempts() {
    let s = Script::new(vec![
        Step::Reply(503, "text/plain", ""),
        Step::Fail(FailureKind::ConnectionReset),
        Step::Reply(200, "application/json", "[1]"),
    ]);
    let b = breaker(config("t-retry-ok", &[]), &s);
    let rec = Arc::new(Recorder::default());
    b.subscribe(rec.clone());
    let t0 = Instant::now();
    let o = fire(&b, "GET", URL, &[]).await;
    assert_eq!(code_of(&o), "ok");
    assert_eq!(s.count(), 3);
    let ev = rec.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        ev[0].starts_with("retry#1:") && ev[0].ends_with("upstream_error"),
        "{ev:?}"
    );
    assert!(
        ev[1].starts_with("retry#2:") && ev[1].ends_with("connection_reset"),
        "{ev:?}"
    );
    // Two backoff sleeps, each within [base, cap] = [100 ms, 2000 ms].
    let slept = t0.elapsed();
    assert!(slept >= 200 * MS && slept <= 4000 * MS, "{slept:?}");
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_bad_bodies_are_not_retried() {
    let s = Script::new(vec![Step::Reply(
        404,
        "application/json",
        "{\"error\":\"nope\"}",
    )]);
    let b = breaker(config("t-404", &[]), &s);
    let o = fire(&b, "GET", URL, &[]).await;
    match o {
        CallOutcome::Rejected(r) => {
            assert_eq!(r.code, Code::Http);
            assert_eq!(r.status, Some(404));
            assert_eq!(&r.body.unwrap()[..], b"{\"error\":\"nope\"}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.count(), 1);
    let s = Script::new(vec![Step::Reply(200, "application/json", "{not json")]);
    let b = breaker(config("t-garbage", &[]), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EBADBODY");
    assert_eq!(s.count(), 1, "a malformed body is deterministic: no retry");
}

#[tokio::test(start_paused = true)]
async fn large_json_bodies_are_checked_off_the_io_thread_with_the_same_verdict() {
    // Above the inline limit the check runs on the blocking pool; the verdict must not change.
    let items = vec!["\"0123456789abcdef\""; 8 * 1024].join(",");
    let valid: &'static str = Box::leak(format!("[{items}]").into_boxed_str());
    assert!(valid.len() > 64 * 1024);
    let s = Script::new(vec![Step::Reply(200, "application/json", valid)]);
    let b = breaker(config("t-big-json", &[]), &s);
    match fire(&b, "GET", URL, &[]).await {
        CallOutcome::Ok(ok) => assert_eq!(ok.body.len(), valid.len()),
        other => panic!("{other:?}"),
    }
    let truncated = &valid[..valid.len() - 1];
    let s = Script::new(vec![Step::Reply(200, "application/json", truncated)]);
    let b = breaker(config("t-big-json-bad", &[]), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EBADBODY");
}

#[tokio::test(start_paused = true)]
async fn post_without_idempotency_key_is_sent_once() {
    let s = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    let b = breaker(config("t-post-once", &[]), &s);
    assert_eq!(code_of(&fire(&b, "POST", URL, &[]).await), "EUPSTREAM");
    assert_eq!(s.count(), 1);
    let s = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    let b = breaker(config("t-post-key", &[]), &s);
    fire(&b, "POST", URL, &[("Idempotency-Key", "k-1")]).await;
    assert_eq!(s.count(), 3, "a caller-supplied key makes POST retryable");
}

#[tokio::test(start_paused = true)]
async fn generated_idempotency_key_is_the_same_on_every_attempt() {
    let s = Script::new(vec![
        Step::Reply(503, "text/plain", ""),
        Step::Reply(502, "text/plain", ""),
        Step::Reply(201, "application/json", "{}"),
    ]);
    let mut cfg = config("t-genkey", &[]);
    cfg.retry.generate_idempotency_keys = true;
    let b = breaker(cfg, &s);
    assert_eq!(code_of(&fire(&b, "POST", URL, &[]).await), "ok");
    let keys: Vec<_> = {
        let seen = s.seen.lock();
        assert_eq!(seen.len(), 3);
        seen.iter()
            .map(|r| r.headers.get(IDEMPOTENCY_KEY).unwrap().clone())
            .collect()
    };
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert_eq!(keys[0].len(), 36);
    // A second logical call gets a new key.
    fire(&b, "POST", URL, &[]).await;
    assert_ne!(
        s.seen.lock()[3].headers.get(IDEMPOTENCY_KEY).unwrap(),
        &keys[0]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_capped_and_garbage_ignored() {
    let s = Script::new(vec![
        Step::ReplyRetryAfter(429, "2"),
        Step::Reply(200, "application/json", "1"),
    ]);
    let b = breaker(config("t-ra", &[]), &s);
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(t0.elapsed(), 2000 * MS);

    let s = Script::new(vec![
        Step::ReplyRetryAfter(503, "3600"),
        Step::Reply(200, "application/json", "1"),
    ]);
    let b = breaker(config("t-ra-cap", &[("retryAfterMaxMs", 1500.0)]), &s);
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(t0.elapsed(), 1500 * MS, "capped by retryAfterMaxMs");

    let s = Script::new(vec![
        Step::ReplyRetryAfter(429, "soon"),
        Step::Reply(200, "application/json", "1"),
    ]);
    let b = breaker(config("t-ra-garbage", &[]), &s);
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    let e = t0.elapsed();
    assert!(
        e >= 100 * MS && e <= 300 * MS,
        "normal first backoff [base, 3*base]: {e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_never_waits_past_the_deadline() {
    let s = Script::new(vec![
        Step::ReplyRetryAfter(503, "3"),
        Step::Reply(200, "application/json", "1"),
    ]);
    let b = breaker(
        config(
            "t-ra-deadline",
            &[("deadline", 1000.0), ("retryAfterMaxMs", 10_000.0)],
        ),
        &s,
    );
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EUPSTREAM");
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "gives up at once instead of sleeping past the deadline"
    );
    assert_eq!(s.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn deadline_bounds_attempts_and_sleeps_together() {
    let s = Script::new(vec![Step::Hang]);
    let b = breaker(
        config("t-deadline", &[("deadline", 500.0), ("timeout", 3000.0)]),
        &s,
    );
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ETIMEDOUT");
    assert_eq!(t0.elapsed(), 500 * MS);

    // Slow failures: each attempt 200 ms then 503; deadline 700 ms cuts the retries.
    let s = Script::new(vec![Step::After(
        200 * MS,
        Box::new(Step::Reply(503, "text/plain", "")),
    )]);
    let b = breaker(
        config(
            "t-deadline-2",
            &[
                ("deadline", 700.0),
                ("maxAttempts", 10.0),
                ("maxFailures", 0.0),
            ],
        ),
        &s,
    );
    let t0 = Instant::now();
    fire(&b, "GET", URL, &[]).await;
    assert!(t0.elapsed() <= 700 * MS, "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn per_attempt_timeout_drops_only_that_attempt() {
    let s = Script::new(vec![
        Step::Hang,
        Step::Reply(200, "application/json", "{\"ok\":true}"),
    ]);
    let b = breaker(config("t-timeout", &[("timeout", 100.0)]), &s);
    let t0 = Instant::now();
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    let e = t0.elapsed();
    assert!(
        e >= 200 * MS && e <= 400 * MS,
        "100 ms timeout + one backoff: {e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn budget_caps_retries_under_a_full_outage() {
    let s = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    // Never trips (so every call reaches the upstream); 3 attempts wanted per call.
    let b = breaker(
        config(
            "t-budget",
            &[
                ("maxFailures", 0.0),
                ("volumeThreshold", 1_000_000.0),
                ("retryBudgetPercent", 20.0),
                ("retryMinPerSec", 1.0),
                ("retryBaseMs", 1.0),
                ("retryMaxMs", 1.0),
            ],
        ),
        &s,
    );
    let rec = Arc::new(Recorder::default());
    b.subscribe(rec.clone());
    for _ in 0..500 {
        fire(&b, "GET", URL, &[]).await;
    }
    let retries = s.count() - 500;
    // 20 % of 500 calls + 1/s x 10 s; without the budget it would be 1000.
    assert!(retries <= 100 + 10, "{retries}");
    assert!(retries >= 100, "{retries}");
    assert!(rec.events().iter().any(|e| e == "budget"));
}

#[tokio::test(start_paused = true)]
async fn no_retry_once_the_breaker_is_open() {
    let s = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    let b = breaker(
        config("t-open", &[("maxFailures", 2.0), ("maxAttempts", 5.0)]),
        &s,
    );
    let rec = Arc::new(Recorder::default());
    b.subscribe(rec.clone());
    // Attempt 1 fails, retry, attempt 2 fails and trips: fallback at once, no third attempt.
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EUPSTREAM");
    assert_eq!(s.count(), 2);
    assert_eq!(b.state(), StateKind::Open);
    // While open: no attempt at all.
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EOPENBREAKER");
    assert_eq!(s.count(), 2);
    let ev = rec.events();
    assert_eq!(
        ev.iter().filter(|e| e.starts_with("retry")).count(),
        1,
        "{ev:?}"
    );
    assert!(ev.contains(&"closed->open".to_string()));
}

#[tokio::test(start_paused = true)]
async fn opens_then_half_open_then_closes_after_recovery() {
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(200, "application/json", "{}"),
    ]);
    let b = breaker(
        config(
            "t-cycle",
            &[
                ("maxFailures", 3.0),
                ("maxAttempts", 1.0),
                ("halfOpenMaxCalls", 1.0),
                ("resetTimeout", 1000.0),
            ],
        ),
        &s,
    );
    let rec = Arc::new(Recorder::default());
    b.subscribe(rec.clone());
    for _ in 0..3 {
        assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ECONNREFUSED");
    }
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EOPENBREAKER");
    tokio::time::advance(1000 * MS).await;
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(b.state(), StateKind::Closed);
    let transitions: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.contains("->"))
        .collect();
    assert_eq!(
        transitions,
        vec!["closed->open", "open->halfOpen", "halfOpen->closed"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_before_its_first_poll_gives_its_half_open_slot_back() {
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(200, "application/json", "{}"),
    ]);
    let b = breaker(
        config(
            "t-unpolled",
            &[
                ("maxFailures", 1.0),
                ("maxAttempts", 1.0),
                ("halfOpenMaxCalls", 1.0),
                ("resetTimeout", 1000.0),
            ],
        ),
        &s,
    );
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ECONNREFUSED");
    tokio::time::advance(1000 * MS).await;
    // The only trial slot, taken by a call whose future is dropped unpolled.
    let permit = b.admit().expect("half-open admits one trial");
    assert_eq!(b.state(), StateKind::HalfOpen);
    assert!(b.admit().is_none(), "the slot is taken");
    let req = b.prepare(URL, None, &[], None).unwrap();
    drop(b.clone().execute(permit, Call::new(req)));
    // The slot is free again: the next call is the trial, and it closes the circuit.
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ok");
    assert_eq!(b.state(), StateKind::Closed);
    assert_eq!(s.count(), 2, "the dropped call never reached the upstream");
}

#[tokio::test(start_paused = true)]
async fn last_known_good_is_served_per_tenant_only_on_failure() {
    let s = Script::new(vec![
        Step::Reply(200, "application/json", "{\"sigils\":[1]}"),
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(config("t-lkg", &[("maxAttempts", 1.0)]), &s);
    let alice = [("authorization", "Bearer alice")];
    assert_eq!(code_of(&fire(&b, "GET", URL, &alice).await), "ok");
    tokio::time::advance(5000 * MS).await;
    match fire(&b, "GET", URL, &alice).await {
        CallOutcome::Fallback(f) => {
            assert_eq!(f.source, FallbackSource::Cache);
            assert_eq!(&f.body.unwrap()[..], b"{\"sigils\":[1]}");
            assert_eq!(f.age, Some(5000 * MS));
            assert_eq!(f.code, Code::ConnRefused);
        }
        o => panic!("{o:?}"),
    }
    match fire(&b, "GET", URL, &[("authorization", "Bearer bob")]).await {
        CallOutcome::Fallback(f) => assert_eq!(f.source, FallbackSource::None),
        o => panic!("{o:?}"),
    }
    match fire(&b, "POST", URL, &alice).await {
        CallOutcome::Fallback(f) => assert_eq!(
            f.source,
            FallbackSource::None,
            "POST is never served from cache"
        ),
        o => panic!("{o:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn identical_concurrent_gets_make_one_request() {
    let s = Script::new(vec![Step::After(
        50 * MS,
        Box::new(Step::Reply(200, "application/json", "{\"n\":1}")),
    )]);
    let b = breaker(config("t-coalesce", &[]), &s);
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { fire(&b, "GET", URL, &[]).await })
        })
        .collect();
    for c in calls {
        let o = c.await.unwrap();
        match o {
            CallOutcome::Ok(r) => assert_eq!(&r.body[..], b"{\"n\":1}"),
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(s.count(), 1);

    let s = Script::new(vec![Step::After(
        50 * MS,
        Box::new(Step::Reply(200, "application/json", "1")),
    )]);
    let mut cfg = config("t-coalesce-off", &[]);
    cfg.coalesce = false;
    let b = breaker(cfg, &s);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { fire(&b, "GET", URL, &[]).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(s.count(), 10);
}

#[tokio::test(start_paused = true)]
async fn abort_rejects_and_frees_the_trial_slot() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused), Step::Hang]);
    let b = breaker(
        config(
            "t-abort",
            &[
                ("maxFailures", 1.0),
                ("maxAttempts", 1.0),
                ("halfOpenMaxCalls", 1.0),
                ("resetTimeout", 100.0),
            ],
        ),
        &s,
    );
    fire(&b, "GET", URL, &[]).await;
    assert_eq!(b.state(), StateKind::Open);
    tokio::time::advance(100 * MS).await;
    let token = CancellationToken::new();
    let req = b.prepare(URL, None, &[], None).unwrap();
    let p = b.admit().expect("trial");
    let call = Call {
        cancel: Some(token.clone()),
        ..Call::new(req)
    };
    let h = tokio::spawn(b.clone().execute(p, call));
    tokio::time::sleep(10 * MS).await;
    assert!(b.admit().is_none(), "the only trial slot is taken");
    token.cancel();
    assert_eq!(code_of(&h.await.unwrap()), "EABORTED");
    assert!(b.admit().is_some(), "the aborted trial gave its slot back");
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_becomes_einternal() {
    let s = Script::new(vec![Step::Panic]);
    let b = breaker(config("t-panic", &[]), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "EINTERNAL");
}

#[tokio::test(start_paused = true)]
async fn oversized_bodies_fail_with_etoolarge() {
    let s = Script::new(vec![Step::Reply(
        200,
        "application/json",
        "[1,2,3,4,5,6,7,8,9]",
    )]);
    let b = breaker(config("t-large", &[("maxResponseBytes", 8.0)]), &s);
    assert_eq!(code_of(&fire(&b, "GET", URL, &[]).await), "ETOOLARGE");
}

#[tokio::test(start_paused = true)]
async fn short_circuit_fast_path_only_when_open_and_nothing_cached() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config("t-fast", &[("maxFailures", 1.0), ("maxAttempts", 1.0)]),
        &s,
    );
    assert!(!b.try_short_circuit(), "closed: go through admit");
    assert_eq!(b.stats().fires, 0, "and nothing was recorded");
    fire(&b, "POST", URL, &[]).await; // fails (POST: not cached) and opens
    assert_eq!(b.state(), StateKind::Open);
    assert!(b.try_short_circuit());
    assert_eq!((b.stats().rejects, b.stats().fallbacks), (1, 2));
    assert_eq!(b.stats().fires, 2);
    assert_eq!(s.count(), 1, "no request");

    // With a cached entry, the slow path must run so the entry can be served.
    let s = Script::new(vec![
        Step::Reply(200, "application/json", "{}"),
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(
        config(
            "t-fast-cached",
            &[("maxFailures", 1.0), ("maxAttempts", 1.0)],
        ),
        &s,
    );
    fire(&b, "GET", URL, &[]).await;
    fire(&b, "GET", "http://127.0.0.1:9/other", &[]).await;
    assert_eq!(b.state(), StateKind::Open);
    assert!(!b.try_short_circuit());
}

#[tokio::test(start_paused = true)]
async fn a_traced_call_records_its_own_attempts_and_retries() {
    let s = Script::new(vec![
        Step::Reply(503, "text/plain", ""),
        Step::Fail(FailureKind::ConnectionReset),
        Step::Reply(200, "application/json", "[1]"),
    ]);
    let b = breaker(config("t-trace", &[]), &s);
    let trace = Arc::new(crate::CallTrace::default());
    let call = Call {
        trace: Some(trace.clone()),
        ..Call::new(b.prepare(URL, None, &[], None).unwrap())
    };
    let o = b.clone().execute(b.admit().unwrap(), call).await;
    assert_eq!(code_of(&o), "ok");
    let t = trace.take();
    let (attempts, retries) = (t.attempts, t.retries);
    assert_eq!(attempts, 3);
    assert_eq!(
        t.last_status,
        Some(503),
        "the last answered failure (the reset had none)"
    );
    let seen: Vec<(u32, FailureKind)> = retries.iter().map(|r| (r.attempt, r.reason)).collect();
    assert_eq!(
        seen,
        vec![
            (1, FailureKind::Upstream),
            (2, FailureKind::ConnectionReset)
        ]
    );
    assert!(retries
        .iter()
        .all(|r| r.delay >= 100 * MS && r.delay <= 2000 * MS));
    // An untraced call records nothing anywhere (no trace, no cost).
    let o = fire(&b, "GET", URL, &[]).await;
    assert_eq!(code_of(&o), "ok");
}

/// A call's future is built on the JS thread and boxed there (a memcpy of its whole size),
/// then moved into its task; every future it awaits is built in its own frame and copied
/// into it. The outbox's futures (~5 KB) once sat inline in every call's, making each
/// 6 KB; they are boxed where a call reaches the outbox (bench/README.md, "Concurrency 50
/// after issue 18"). This keeps a new inline future of that size from coming back unseen.
#[test]
fn a_call_future_stays_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Script::new(vec![]);
        let b = breaker(config("t-future-size", &[]), &s);
        let req = b.prepare(URL, Some("GET"), &[], None).unwrap();
        let call = Call::new(req);
        let e = b.clone().execute(b.admit().unwrap(), call);
        let size = std::mem::size_of_val(&e);
        assert!(size <= 4096, "a call's future is {size} bytes");
    });
}
