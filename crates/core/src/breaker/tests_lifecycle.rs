//! How calls end besides their outcome: the circuit opening while they wait to retry, and
//! their handle or breaker shutting down. Paused tokio time, scripted upstream.

use super::tests::{breaker, code_of, config, fire, MS, URL};
use super::*;
use crate::test_support::{Script, Step};

#[tokio::test(start_paused = true)]
async fn a_call_waiting_to_retry_settles_at_once_when_the_circuit_opens() {
    // Issue 11 (8): calls kept sleeping out their backoff after the circuit had opened.
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "t-backoff-open",
            &[
                ("maxFailures", 2.0),
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
        async move {
            let o = fire(&b, "GET", URL, &[]).await;
            (o, started.elapsed())
        }
    });
    tokio::time::sleep(10 * MS).await;
    assert_eq!(s.count(), 1, "the first call sleeps before its retry");
    // A second failure opens the circuit (maxFailures 2); another URL, so it is not
    // coalesced with the waiting call.
    let other = format!("{URL}/other");
    assert_eq!(code_of(&fire(&b, "GET", &other, &[]).await), "ECONNREFUSED");
    assert_eq!(b.state(), StateKind::Open);
    let (o, took) = waiting.await.unwrap();
    assert_eq!(code_of(&o), "EOPENBREAKER");
    assert!(
        took < 20 * MS,
        "settled when the circuit opened, not after 500 ms: {took:?}"
    );
    assert_eq!(s.count(), 2, "no attempt against the open circuit");
}

#[tokio::test(start_paused = true)]
async fn shutting_down_a_handle_settles_its_calls_at_once_and_frees_their_slots() {
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused), Step::Hang]);
    let b = breaker(
        config(
            "t-shutdown",
            &[
                ("maxFailures", 1.0),
                ("maxAttempts", 1.0),
                ("halfOpenMaxCalls", 1.0),
                ("resetTimeout", 100.0),
                ("timeout", 60_000.0),
                ("deadline", 60_000.0),
            ],
        ),
        &s,
    );
    fire(&b, "GET", URL, &[]).await;
    tokio::time::advance(100 * MS).await;
    let (mine, other) = (b.stop_token(), b.stop_token());
    let call = |stop: &CancellationToken| Call {
        stop: Some(stop.clone()),
        ..Call::new(b.prepare(URL, None, &[], None).unwrap())
    };
    // The half-open trial, hanging upstream, on the handle that shuts down.
    let trial = tokio::spawn(b.clone().execute(b.admit().expect("trial"), call(&mine)));
    tokio::time::sleep(10 * MS).await;
    assert!(b.admit().is_none(), "the trial slot is taken");
    let started = Instant::now();
    mine.cancel();
    assert_eq!(code_of(&trial.await.unwrap()), "ESHUTDOWN");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "at once, not at its 60 s timeout"
    );
    // The slot came back; another handle's call is untouched by that shutdown.
    let p = b.admit().expect("the shut-down trial gave its slot back");
    let theirs = tokio::spawn(b.clone().execute(p, call(&other)));
    tokio::time::sleep(1000 * MS).await;
    assert!(!theirs.is_finished(), "a sibling handle's call runs on");
    // Closing the breaker (its last handle) ends every call.
    b.close();
    assert_eq!(code_of(&theirs.await.unwrap()), "ESHUTDOWN");
    assert!(
        !crate::metrics::render().contains("\"t-shutdown\""),
        "series removed"
    );
}

// Issue 25 (6): a closed breaker whose JS handle is still referenced kept everything until
// the handle was collected. Its cached responses and its HTTP clients go at close.
#[tokio::test]
async fn closing_a_breaker_releases_its_cache_and_its_http_clients() {
    let b = Breaker::new(config("t-close-releases", &[]), Deps::default()).unwrap();
    let client = match &b.http {
        Transport::Http(h) => Arc::downgrade(&h.slot().current().expect("a client")),
        _ => unreachable!(),
    };
    let lkg = b.lkg().expect("the cache is on by default");
    let entry = || crate::lkg::Entry {
        body: Bytes::from(vec![7u8; 4096]),
        json: false,
        stored_at_ms: 1,
        vary: None,
        mac: None,
    };
    lkg.store(crate::lkg::CacheKey([1; 32]), entry(), false);
    assert_eq!((lkg.len(), lkg.bytes()), (1, 4096));
    assert!(client.upgrade().is_some());
    b.close();
    assert_eq!((lkg.len(), lkg.bytes()), (0, 0));
    assert!(
        client.upgrade().is_none(),
        "the clients went with the close"
    );
    // Nothing is stored any more, and an attempt racing the close fails instead of sending.
    assert_eq!(
        lkg.store(crate::lkg::CacheKey([2; 32]), entry(), false),
        crate::lkg::Stored::Rejected
    );
    let req = prepare(None, URL, None, &[], None).unwrap();
    assert_eq!(
        b.http.send(&req, 1024).await.err().map(|f| f.kind),
        Some(FailureKind::Connection)
    );
}
