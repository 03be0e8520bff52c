//! The outbox end to end in the core: durable calls queued when they cannot be delivered,
//! the delivery loop (order, dead letters, backoff, expiry, bounds, pacing, Retry-After,
//! the circuit), tampering and restarts. Paused tokio time and a scripted upstream; the
//! store is the real SQLite file in a temporary directory (its syncs run on the blocking
//! pool, during which paused time does not advance).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::breaker::Transport;
use crate::breaker::{Breaker, Call, Deps};
use crate::config::{Config, RawOptions, RawValue};
use crate::error::FailureKind;
use crate::outcome::CallOutcome;
use crate::rng::SplitMix64;
use crate::test_support::{Script, Step};

const MS: Duration = Duration::from_millis(1);
const BASE: &str = "http://127.0.0.1:9";

pub(super) struct Dir(pub(super) PathBuf);

impl Dir {
    pub(super) fn new(tag: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("dnastore-outbox-core-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn config(name: &str, dir: &Dir, opts: &[(&str, RawValue)]) -> Config {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("outbox", RawValue::String("on".into()))
        .set("outboxDir", RawValue::String(dir.0.display().to_string()))
        .set("maxAttempts", RawValue::Number(1.0))
        .set("maxFailures", RawValue::Number(1.0))
        .set("resetTimeout", RawValue::Number(1000.0))
        .set("halfOpenMaxCalls", RawValue::Number(1.0))
        .set("outboxRetryMaxMs", RawValue::Number(200.0))
        .set("retryBaseMs", RawValue::Number(100.0));
    for (k, v) in opts {
        o.insert(k, v.clone());
    }
    Config::resolve(&o, &|_| None).unwrap()
}

pub(super) fn breaker(cfg: Config, script: &Arc<Script>) -> Arc<Breaker> {
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(3)),
        wall_origin: SystemTime::now(),
        runtime: None,
    };
    Breaker::with_transport(cfg, deps, Transport::Script(script.clone())).unwrap()
}

/// A durable write, as the binding makes it.
pub(super) async fn write(
    b: &Arc<Breaker>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CallOutcome {
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = b
        .prepare(
            &format!("{BASE}{path}"),
            Some(method),
            &h,
            Some(Bytes::from_static(b"{}")),
        )
        .unwrap();
    let mut call = Call::new(req);
    b.make_durable(&mut call, None).unwrap();
    match b.admit() {
        Some(p) => b.clone().execute(p, call).await,
        None => b.clone().queue_rejected(call).await,
    }
}

fn queued_id(o: &CallOutcome) -> String {
    match o {
        CallOutcome::Queued(q) => q.id.clone(),
        other => panic!("expected queued, got {other:?}"),
    }
}

/// Lets the delivery loop run until the outbox is empty (or `limit` passes).
pub(super) async fn settle(b: &Arc<Breaker>, limit: Duration) {
    let ob = b.outbox().unwrap().clone();
    let _ = tokio::time::timeout(limit, async {
        while !ob.is_empty() {
            tokio::time::sleep(10 * MS).await;
        }
    })
    .await;
}

/// (method path idempotency-key) of every request the upstream saw.
pub(super) fn seen(s: &Script) -> Vec<(String, String, String)> {
    s.seen
        .lock()
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.url.path().to_string(),
                r.headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn writes_failing_now_are_queued_then_delivered_in_order_with_their_keys() {
    let dir = Dir::new("order");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(201, "application/json", "{}"),
    ]);
    let b = breaker(config("ob-order", &dir, &[]), &s);
    // The first fails (and opens the circuit), the others are short-circuited: all queued.
    let a = write(&b, "POST", "/api/sigils", &[("idempotency-key", "mine")]).await;
    let c = write(&b, "PUT", "/api/sigils/1", &[]).await;
    let d = write(&b, "PUT", "/api/sigils/1", &[]).await;
    let CallOutcome::Queued(qa) = &a else {
        panic!("{a:?}")
    };
    assert_eq!(qa.idempotency_key, "mine", "the caller's key is kept");
    assert_eq!(qa.code, crate::Code::ConnRefused);
    let CallOutcome::Queued(qc) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(qc.code, crate::Code::OpenBreaker);
    assert_eq!(b.outbox().unwrap().stats(b.wall_ms()).entries, 3);
    // After resetTimeout the loop's first delivery is the half-open trial.
    settle(&b, Duration::from_secs(5)).await;
    let got = seen(&s);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], ("POST".into(), "/api/sigils".into(), "mine".into()));
    // Writes of different ordering keys are claimed as each becomes due, so their relative
    // order depends on their backoffs (and, on paused time, on when SQLite's blocking
    // threads answer): only the order within a key is promised, and every key is kept.
    let delivered = &got[1..];
    assert!(
        delivered.contains(&("POST".into(), "/api/sigils".into(), "mine".into())),
        "same key when delivered: {got:?}"
    );
    let puts: Vec<&String> = delivered
        .iter()
        .filter(|r| r.0 == "PUT" && r.1 == "/api/sigils/1")
        .map(|r| &r.2)
        .collect();
    let keys = [qc.idempotency_key.clone(), queued_id(&d)];
    assert_eq!(puts.len(), 2, "{got:?}");
    assert_eq!(
        puts[0], &keys[0],
        "PUTs to one resource in the order they were written"
    );
    assert_ne!(puts[0], puts[1]);
    let st = b.outbox().unwrap().stats(b.wall_ms());
    assert_eq!((st.entries, st.delivered, st.enqueued), (0, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_4xx_is_dead_lettered_with_the_answer_and_never_retried() {
    let dir = Dir::new("dead");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(422, "application/json", "{\"error\":\"bad sigil\"}"),
    ]);
    let b = breaker(config("ob-dead", &dir, &[]), &s);
    let id = queued_id(&write(&b, "POST", "/api/sigils", &[]).await);
    settle(&b, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(s.count(), 2, "delivered once, refused, never again");
    let dead = b.outbox().unwrap().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str(), dead[0].status),
        (id.as_str(), "rejected", Some(422))
    );
    assert_eq!(dead[0].answer.as_deref(), Some("{\"error\":\"bad sigil\"}"));
    assert_eq!(
        dead[0].attempts, 1,
        "the delivery DNAStore refused was an attempt"
    );
    // retry(id) puts it back; a 2xx now delivers it; discard removes a dead letter for good.
    let ob = b.outbox().unwrap().clone();
    assert!(!ob.retry("nope", b.wall_ms()).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_5xx_stays_queued_with_backoff_until_it_is_delivered() {
    let dir = Dir::new("backoff");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(503, "text/plain", ""),
        Step::Reply(503, "text/plain", ""),
        Step::Reply(201, "application/json", "{}"),
    ]);
    // maxFailures high: the 503s keep the circuit closed, so the write's own backoff paces it.
    let b = breaker(
        config(
            "ob-backoff",
            &dir,
            &[("maxFailures", RawValue::Number(100.0))],
        ),
        &s,
    );
    let _ = write(&b, "POST", "/x", &[]).await;
    let t0 = tokio::time::Instant::now();
    settle(&b, Duration::from_secs(10)).await;
    assert_eq!(s.count(), 4);
    assert!(
        t0.elapsed() >= 200 * MS,
        "two backoffs of at least retryBaseMs: {:?}",
        t0.elapsed()
    );
    let keys: Vec<String> = seen(&s).into_iter().map(|x| x.2).collect();
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "one key on every attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_outbox_answers_the_plain_fallback_never_a_silent_drop() {
    let dir = Dir::new("full");
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "ob-full",
            &dir,
            &[
                ("outboxMaxEntries", RawValue::Number(2.0)),
                ("resetTimeout", RawValue::Number(600_000.0)),
            ],
        ),
        &s,
    );
    assert!(matches!(
        write(&b, "POST", "/a", &[]).await,
        CallOutcome::Queued(_)
    ));
    assert!(matches!(
        write(&b, "POST", "/b", &[]).await,
        CallOutcome::Queued(_)
    ));
    match write(&b, "POST", "/c", &[]).await {
        CallOutcome::Fallback(f) => assert_eq!(f.code, crate::Code::OpenBreaker),
        other => panic!("{other:?}"),
    }
    let text = crate::metrics::render();
    assert!(
        text.contains("dnastore_outbox_refused_total{name=\"ob-full\",reason=\"full\"} 1"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn old_writes_expire_to_the_dead_letters() {
    let dir = Dir::new("expiry");
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "ob-expiry",
            &dir,
            &[("outboxMaxAgeMs", RawValue::Number(3000.0))],
        ),
        &s,
    );
    let id = queued_id(&write(&b, "POST", "/a", &[]).await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let dead = b.outbox().unwrap().dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str()),
        (id.as_str(), "expired")
    );
    assert!(b.outbox().unwrap().is_empty());
    // retry() is a new chance: its age counts from now, so it does not expire again at
    // once (it did: it kept the age it had died of).
    let ob = b.outbox().unwrap().clone();
    assert!(ob.retry(&id, b.wall_ms()).await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ob.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(ob.stats(b.wall_ms()).entries, 1, "queued again, trying");
}

#[tokio::test(start_paused = true)]
async fn delivery_is_paced_and_stops_while_the_circuit_is_open() {
    let dir = Dir::new("pace");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::After(
            50 * MS,
            Box::new(Step::Reply(201, "application/json", "{}")),
        ),
    ]);
    let b = breaker(
        config(
            "ob-pace",
            &dir,
            &[
                ("outboxRate", RawValue::Number(10.0)),
                ("outboxConcurrency", RawValue::Number(2.0)),
                ("resetTimeout", RawValue::Number(1000.0)),
            ],
        ),
        &s,
    );
    for i in 0..21 {
        let _ = write(&b, "POST", &format!("/w/{i}"), &[]).await;
    }
    // Nothing is attempted while the circuit is open (1 s).
    tokio::time::sleep(900 * MS).await;
    assert_eq!(s.count(), 1);
    let t0 = tokio::time::Instant::now();
    settle(&b, Duration::from_secs(30)).await;
    assert_eq!(s.count(), 22);
    // 21 writes at 10/s with a burst of 2: about 1.9 s after the circuit admitted the first.
    let took = t0.elapsed();
    assert!(took >= 1800 * MS && took <= 2600 * MS, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn delivery_stops_the_moment_the_circuit_opens_again_and_the_run_is_counted() {
    let dir = Dir::new("reopen-mid");
    // Down (queues 6), then 2 deliveries succeed, then DNAStore fails again.
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(201, "application/json", "{}"),
        Step::Reply(201, "application/json", "{}"),
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(
        config(
            "ob-reopen-mid",
            &dir,
            &[
                ("outboxConcurrency", RawValue::Number(1.0)),
                ("resetTimeout", RawValue::Number(60_000.0)),
            ],
        ),
        &s,
    );
    let rec = Arc::new(Phases::default());
    b.subscribe(rec.clone());
    for i in 0..6 {
        let _ = write(&b, "POST", &format!("/m/{i}"), &[]).await;
    }
    // First reset: the trial and one more get through, the next fails and reopens.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(s.count(), 4);
    assert_eq!(b.outbox().unwrap().stats(b.wall_ms()).entries, 4);
    assert!(b.open_for().is_some());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(s.count(), 4, "no delivery while open");
    // Three more resets, each trial failing: one outage, so still one pause logged.
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(s.count(), 7, "one failed trial per reset");
    assert_eq!(
        rec.0.lock().clone(),
        vec!["started:6:0".to_string(), "paused:4:2".to_string()]
    );
}

/// The outbox's run events, as `phase:queued:delivered`.
#[derive(Default)]
struct Phases(parking_lot::Mutex<Vec<String>>);

impl crate::observer::Observer for Phases {
    fn on_event(&self, e: &crate::observer::Event<'_>) {
        if let crate::observer::Event::Outbox {
            phase,
            queued,
            delivered,
            ..
        } = e
        {
            self.0
                .lock()
                .push(format!("{}:{queued}:{delivered}", phase.as_str()));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_pauses_delivery() {
    let dir = Dir::new("retry-after");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::ReplyRetryAfter(503, "3"),
        Step::Reply(201, "application/json", "{}"),
    ]);
    let b = breaker(
        config(
            "ob-ra",
            &dir,
            &[
                ("maxFailures", RawValue::Number(100.0)),
                ("outboxRetryMaxMs", RawValue::Number(10.0)),
                ("retryBaseMs", RawValue::Number(10.0)),
            ],
        ),
        &s,
    );
    let _ = write(&b, "POST", "/a", &[]).await;
    let t0 = tokio::time::Instant::now();
    settle(&b, Duration::from_secs(20)).await;
    assert_eq!(s.count(), 3);
    assert!(
        t0.elapsed() >= 3000 * MS,
        "waited DNAStore's Retry-After: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_tampered_entry_is_dead_lettered_and_never_sent() {
    let dir = Dir::new("tamper");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(201, "application/json", "{}"),
    ]);
    let cfg = config(
        "ob-tamper",
        &dir,
        &[
            ("signingSecret", RawValue::String("k".into())),
            ("resetTimeout", RawValue::Number(600_000.0)),
        ],
    );
    let b = breaker(cfg.clone(), &s);
    let id = queued_id(&write(&b, "POST", "/a", &[]).await);
    b.close();
    drop(b);
    // Someone with access to the file but not the secret changes the write.
    let path = dir.0.join("ob-tamper.outbox.sqlite");
    let c = rusqlite::Connection::open(&path).unwrap();
    let blob: Vec<u8> = c
        .query_row("SELECT write FROM outbox", [], |r| r.get(0))
        .unwrap();
    let mut changed = blob.clone();
    let last = changed.len() - 2;
    changed[last] ^= 1;
    c.execute("UPDATE outbox SET write = ?1", [changed])
        .unwrap();
    drop(c);
    let mut cfg = cfg;
    cfg.reset_timeout = Duration::from_millis(10);
    let b = breaker(cfg, &s);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.count(), 1, "never sent");
    let dead = b.outbox().unwrap().dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str()),
        (id.as_str(), "tampered")
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_breaker_finds_its_queue_and_delivers_it() {
    let dir = Dir::new("restart");
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let cfg = config(
        "ob-restart",
        &dir,
        &[("resetTimeout", RawValue::Number(600_000.0))],
    );
    let b = breaker(cfg.clone(), &down);
    let ids: Vec<String> = futures_util::future::join_all((0..5).map(|i| {
        let b = b.clone();
        async move { queued_id(&write(&b, "POST", &format!("/r/{i}"), &[]).await) }
    }))
    .await;
    b.close();
    drop(b);
    let up = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let b = breaker(cfg, &up);
    assert_eq!(b.outbox().unwrap().stats(b.wall_ms()).entries, 5);
    settle(&b, Duration::from_secs(5)).await;
    assert_eq!(up.count(), 5);
    assert_eq!(ids.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn discard_and_retry_and_drain() {
    let dir = Dir::new("ops");
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let b = breaker(
        config(
            "ob-ops",
            &dir,
            &[("resetTimeout", RawValue::Number(600_000.0))],
        ),
        &s,
    );
    let a = queued_id(&write(&b, "POST", "/a", &[]).await);
    let c = queued_id(&write(&b, "POST", "/c", &[]).await);
    let ob = b.outbox().unwrap().clone();
    assert_eq!(
        ob.list(10)
            .await
            .unwrap()
            .iter()
            .map(|l| l.id.clone())
            .collect::<Vec<_>>(),
        [a.clone(), c.clone()]
    );
    assert!(ob.discard(&a).await.unwrap());
    assert_eq!(ob.list(10).await.unwrap().len(), 1);
    // drain() settles while the circuit is open (nothing can be delivered).
    tokio::time::timeout(Duration::from_secs(1), b.drain_outbox())
        .await
        .expect("drain returns when open");
}

#[tokio::test]
async fn a_second_breaker_of_the_same_name_after_close_reopens_the_file() {
    let dir = Dir::new("reopen");
    let s = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let cfg = config("ob-reopen", &dir, &[]);
    let b = breaker(cfg.clone(), &s);
    b.close();
    let again = Breaker::with_transport(
        cfg,
        Deps {
            rng: Arc::new(SplitMix64::seeded(1)),
            wall_origin: SystemTime::now(),
            runtime: None,
        },
        Transport::Script(s.clone()),
    );
    assert!(again.is_ok(), "the closed breaker released the file's lock");
}

#[tokio::test(start_paused = true)]
async fn a_newer_write_of_a_key_goes_behind_a_queued_one_never_live() {
    let dir = Dir::new("behind");
    // v1 fails live (the circuit stays closed); its delivery takes a second; v2 comes in
    // meanwhile. Sent live, v2 would land first and v1's replay would then overwrite it.
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::After(
            Duration::from_secs(1),
            Box::new(Step::Reply(200, "application/json", "{}")),
        ),
        Step::Reply(200, "application/json", "{}"),
    ]);
    let closed = [("maxFailures", RawValue::Number(100.0))];
    let b = breaker(config("ob-behind", &dir, &closed), &s);
    let v1 = write(&b, "PUT", "/api/sigils/1", &[("idempotency-key", "v1")]).await;
    assert!(!queued_id(&v1).is_empty());
    let v2 = write(&b, "PUT", "/api/sigils/1", &[("idempotency-key", "v2")]).await;
    let CallOutcome::Queued(q2) = &v2 else {
        panic!("v2 must be queued behind v1, got {v2:?}")
    };
    assert_eq!(q2.code, crate::Code::Ordered);
    // Another resource is not held up.
    let other = write(&b, "PUT", "/api/sigils/2", &[("idempotency-key", "o")]).await;
    assert!(matches!(other, CallOutcome::Ok(_)), "{other:?}");
    settle(&b, Duration::from_secs(10)).await;
    let order: Vec<String> = seen(&s)
        .into_iter()
        .filter(|(_, p, _)| p == "/api/sigils/1")
        .map(|(_, _, k)| k)
        .collect();
    assert_eq!(order, ["v1", "v1", "v2"], "v2 lands last");
}

#[tokio::test]
async fn an_empty_idempotency_key_on_a_durable_write_is_invalid() {
    let dir = Dir::new("emptykey");
    let s = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let b = breaker(config("ob-emptykey", &dir, &[]), &s);
    for v in ["", "   "] {
        let req = b
            .prepare(
                &format!("{BASE}/a"),
                Some("POST"),
                &[("idempotency-key".into(), v.into())],
                None,
            )
            .unwrap();
        let e = b.make_durable(&mut Call::new(req), None).unwrap_err();
        assert_eq!(e.code, crate::Code::Invalid, "{v:?}");
        assert!(e.message.contains("must not be empty"), "{}", e.message);
    }
    assert_eq!(s.count(), 0);
}

/// A discard() that answers true means the write is never sent, however it races the
/// delivery loop (it did not: the loop could claim the write while the store removed it).
/// Real time: discards walk the queue from its front as the loop starts delivering there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_discarded_write_is_never_delivered() {
    let dir = Dir::new("discardrace");
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(201, "application/json", "{}"),
    ]);
    let paced = [
        // Long enough to queue 300 writes on a loaded 2-core CI machine (2 s was not, once).
        ("resetTimeout", RawValue::Number(5000.0)),
        ("outboxRate", RawValue::Number(500.0)),
        ("outboxConcurrency", RawValue::Number(8.0)),
    ];
    let b = breaker(config("ob-discardrace", &dir, &paced), &s);
    let opened = tokio::time::Instant::now();
    let mut ids = vec![];
    for i in 0..300 {
        let key = format!("k-{i}");
        let o = write(&b, "POST", "/a", &[("idempotency-key", key.as_str())]).await;
        ids.push((queued_id(&o), key));
    }
    assert!(
        opened.elapsed() < Duration::from_millis(4900),
        "queued while open"
    );
    tokio::time::sleep_until(opened + Duration::from_millis(4980)).await;
    let ob = b.outbox().unwrap().clone();
    let ids = Arc::new(ids);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (ob, ids, next) = (ob.clone(), ids.clone(), next.clone());
            tokio::spawn(async move {
                let mut gone = vec![];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((id, key)) = ids.get(i) else {
                        return gone;
                    };
                    if let Ok(true) = ob.discard(id).await {
                        gone.push(key.clone());
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    let mut discarded = vec![];
    for w in workers {
        discarded.extend(w.await.unwrap());
    }
    settle(&b, Duration::from_secs(10)).await;
    let sent: std::collections::HashSet<String> =
        seen(&s).into_iter().skip(1).map(|(_, _, k)| k).collect();
    let both: Vec<&String> = discarded.iter().filter(|k| sent.contains(*k)).collect();
    assert!(both.is_empty(), "discarded yet delivered: {both:?}");
    assert!(
        !discarded.is_empty() && !sent.is_empty(),
        "the discards raced the deliveries ({} discarded, {} delivered)",
        discarded.len(),
        sent.len()
    );
    assert_eq!(
        discarded.len() + sent.len(),
        300,
        "every write either discarded or delivered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_queue_the_secret_does_not_verify_is_a_startup_warning() {
    let dir = Dir::new("rotate");
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let with = |secret: &str| {
        config(
            "ob-rotate",
            &dir,
            &[
                ("signingSecret", RawValue::String(secret.into())),
                ("resetTimeout", RawValue::Number(600_000.0)),
            ],
        )
    };
    let b = breaker(with("old"), &down);
    assert!(b.outbox().unwrap().warnings().is_empty());
    for i in 0..3 {
        queued_id(&write(&b, "POST", &format!("/r/{i}"), &[]).await);
    }
    b.close();
    drop(b);
    // Rotated with writes still queued: said at startup, naming the file, not the secret.
    let b = breaker(with("new"), &down);
    let w = b.outbox().unwrap().warnings().to_vec();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("3 of the 3 oldest queued writes in "),
        "{}",
        w[0]
    );
    assert!(
        w[0].contains("ob-rotate.outbox.sqlite") && !w[0].contains("new"),
        "{}",
        w[0]
    );
    b.close();
    drop(b);
    let b = breaker(with("old"), &down);
    assert!(
        b.outbox().unwrap().warnings().is_empty(),
        "the previous secret verifies them"
    );
}
