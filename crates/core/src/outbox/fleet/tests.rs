//! The fleet outbox against a real redis-server (one per test, on a free loopback port,
//! stopped by its PID): stored before `queued`, delivered with its key, order per key
//! across replicas, dead letters, retry, discard, expiry, tampering, bounds, takeover of a
//! dead replica's writes, and a Redis that is down. Breakers with the same name in this
//! process stand in for replicas (the test with real processes is
//! `__test__/outbox-redis.test.js`). Real time, bounded: every wait polls with a deadline;
//! claim idle times of a few hundred ms keep it fast. Skipped, saying why, without
//! redis-server on the PATH, except under CI=true, where that fails.

use std::time::Duration;

use tokio::time::Instant;

use super::tests_support::{drained, keys, ob, queued, replica, url, write, BASE, OK};
use crate::breaker::Call;
use crate::error::FailureKind;
use crate::outbox::Refused;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::{eventually, Script, Step};

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_write_is_in_the_stream_before_queued_and_delivered_with_its_key() {
    require_redis();
    let redis = Server::start(&[]);
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused), OK]);
    let b = replica("fl-basic", &url(&redis), &s, &[]);
    let (id, key) = queued(&write(&b, "POST", "/api/sigils", "{\"a\":1}").await);
    // Acknowledged by Redis before the caller heard `queued`.
    assert_eq!(redis.cli(&["XLEN", "dnastore:outbox:{fl-basic}:q"]), "1");
    assert_eq!(
        redis
            .cli(&["HGET", "dnastore:outbox:{fl-basic}:ids", &id])
            .get(..2),
        Some("q ")
    );
    drained(&ob(&b), 5).await;
    assert_eq!(
        keys(&s),
        [key.clone(), key],
        "the same key on every attempt"
    );
    // Nothing left behind: the byte count is honest, the per-write hashes are empty.
    assert_eq!(redis.cli(&["GET", "dnastore:outbox:{fl-basic}:bytes"]), "0");
    assert_eq!(redis.cli(&["HLEN", "dnastore:outbox:{fl-basic}:ids"]), "0");
    assert_eq!(
        redis
            .cli(&["XPENDING", "dnastore:outbox:{fl-basic}:q", "delivery"])
            .lines()
            .next(),
        Some("0")
    );
    let st = ob(&b).stats(b.wall_ms());
    assert_eq!((st.entries, st.delivered, st.enqueued), (0, 1, 1));
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn writes_of_one_key_go_one_at_a_time_in_order_across_replicas() {
    require_redis();
    let redis = Server::start(&[]);
    // A writer whose circuit stays open queues 8 PUTs to one resource and 4 POSTs; it
    // never delivers (an open circuit takes nothing from the stream).
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let w = replica(
        "fl-order",
        &url(&redis),
        &down,
        &[("resetTimeout", 600_000.0)],
    );
    let mut put_keys = vec![];
    for i in 0..12 {
        let o = if i % 3 == 2 {
            write(&w, "POST", &format!("/api/sigils/new{i}"), "{}").await
        } else {
            write(&w, "PUT", "/api/sigils/1", "{}").await
        };
        if i % 3 != 2 {
            put_keys.push(queued(&o).1);
        }
    }
    // Two replicas with one slot each hold at most 4 writes apiece, so the PUTs are split
    // between them: the second's must wait for the first's.
    let up = Script::new(vec![Step::After(Duration::from_millis(20), Box::new(OK))]);
    let slow = [("outboxConcurrency", 1.0)];
    let a = replica("fl-order", &url(&redis), &up, &slow);
    let b = replica("fl-order", &url(&redis), &up, &slow);
    drained(&ob(&a), 10).await;
    let seen = keys(&up);
    let puts: Vec<&String> = seen.iter().filter(|k| put_keys.contains(k)).collect();
    assert_eq!(
        puts,
        put_keys.iter().collect::<Vec<_>>(),
        "PUTs in the order written, each once"
    );
    assert_eq!(seen.len(), 12, "every write once: {seen:?}");
    let (da, db) = (ob(&a).stats(0).delivered, ob(&b).stats(0).delivered);
    assert!(da > 0 && db > 0, "both replicas delivered: {da} + {db}");
    assert_eq!(
        redis.cli(&["KEYS", "dnastore:outbox:{fl-order}:key:*"]),
        "",
        "key lines emptied"
    );
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_4xx_is_dead_lettered_with_the_answer_then_retried_or_discarded() {
    require_redis();
    let redis = Server::start(&[]);
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(422, "application/json", "{\"error\":\"bad sigil\"}"),
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(409, "application/json", "{}"),
        OK,
    ]);
    let b = replica("fl-dead", &url(&redis), &s, &[]);
    let o = ob(&b);
    let (first, _) = queued(&write(&b, "POST", "/a", "{}").await);
    eventually(5, "dead-lettered", || async {
        o.dead_letters(10).await.unwrap().len() == 1
    })
    .await;
    let dead = o.dead_letters(10).await.unwrap();
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str(), dead[0].status),
        (first.as_str(), "rejected", Some(422))
    );
    assert_eq!(dead[0].answer.as_deref(), Some("{\"error\":\"bad sigil\"}"));
    assert_eq!(
        (dead[0].method.as_str(), dead[0].url.as_str()),
        ("POST", "http://127.0.0.1:9/a")
    );
    assert_eq!(s.count(), 2, "never retried");
    assert_eq!(
        dead[0].attempts, 1,
        "the delivery DNAStore refused was an attempt"
    );
    assert_eq!(redis.cli(&["GET", "dnastore:outbox:{fl-dead}:bytes"]), "0");

    let (second, _) = queued(&write(&b, "POST", "/b", "{}").await);
    eventually(5, "both dead", || async {
        o.dead_letters(10).await.unwrap().len() == 2
    })
    .await;
    // retry(id): back in the queue, delivered now; discard(id): gone for good.
    assert!(o.retry(&first, b.wall_ms()).await.unwrap());
    assert!(
        !o.retry(&first, b.wall_ms()).await.unwrap(),
        "no longer a dead letter"
    );
    drained(&o, 5).await;
    assert_eq!(s.count(), 5);
    assert!(o.discard(&second).await.unwrap());
    assert!(!o.discard(&second).await.unwrap());
    assert!(o.dead_letters(10).await.unwrap().is_empty());
    assert!(!o.retry("nope", b.wall_ms()).await.unwrap());
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn tampered_and_expired_writes_are_dead_lettered_never_sent() {
    require_redis();
    let redis = Server::start(&[]);
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let w = replica(
        "fl-tamper",
        &url(&redis),
        &down,
        &[("resetTimeout", 600_000.0)],
    );
    let (forged, _) = queued(&write(&w, "POST", "/a", "{\"n\":1}").await);
    let (old, _) = queued(&write(&w, "POST", "/b", "{\"n\":2}").await);
    w.close();
    // Someone with access to Redis but not the secret changes the first write's body.
    let mut c = redis::Client::open(url(&redis))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let q = "dnastore:outbox:{fl-tamper}:q";
    let entries: super::Entries = redis::cmd("XRANGE")
        .arg(q)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let (sid, mut fields) = entries[0].clone();
    for (k, v) in fields.iter_mut() {
        if k == "w" {
            let last = v.len() - 2;
            v[last] ^= 1;
        }
    }
    // Stream entries cannot change in place: the forger deletes it and adds the copy.
    let mut rewrite = redis::pipe();
    rewrite.atomic().cmd("XDEL").arg(q).arg(&sid).ignore();
    rewrite.cmd("XADD").arg(q).arg("*").arg(&fields).ignore();
    rewrite.query_async::<()>(&mut c).await.unwrap();
    // The second one is old by the time a replica with a 1 s maximum age takes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let up = Script::new(vec![OK]);
    let b = replica(
        "fl-tamper",
        &url(&redis),
        &up,
        &[("outboxMaxAgeMs", 1000.0)],
    );
    let o = ob(&b);
    drained(&o, 5).await;
    assert_eq!(up.count(), 0, "neither was sent");
    let mut dead: Vec<(String, String)> = o
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.reason))
        .collect();
    dead.sort();
    let mut want = vec![
        (forged, "tampered".to_string()),
        (old.clone(), "expired".to_string()),
    ];
    want.sort();
    assert_eq!(dead, want);
    let m = crate::metrics::render();
    assert!(
        m.contains("dnastore_outbox_dead_lettered_total{name=\"fl-tamper\",reason=\"tampered\"} 1"),
        "{m}"
    );
    // retry() of the expired one is a new chance: its age counts from now (it kept the
    // age it had died of, and expired again at once).
    assert!(o.retry(&old, b.wall_ms()).await.unwrap());
    drained(&o, 5).await;
    assert_eq!(up.count(), 1, "delivered, not expired again");
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_dead_replicas_writes_are_taken_over_with_their_backoff() {
    require_redis();
    let redis = Server::start(&[]);
    // Replica A takes the writes, fails to deliver them (503, its circuit stays closed so
    // it keeps them in backoff), then dies: its claims are no longer renewed.
    let failing = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    let many = [("maxFailures", 1000.0), ("outboxRetryMaxMs", 300.0)];
    let a = replica("fl-takeover", &url(&redis), &failing, &many);
    let mut ks = vec![];
    for i in 0..5 {
        ks.push(queued(&write(&a, "PUT", &format!("/r/{}", i % 2), "{}").await).1);
    }
    let q = "dnastore:outbox:{fl-takeover}:q";
    eventually(5, "A holds every write and has tried them", || async {
        redis.cli(&["XPENDING", q, "delivery"]).lines().next() == Some("5") && failing.count() >= 10
    })
    .await;
    let consumer = ob(&a).fleet().unwrap().consumer().to_string();
    // Dropped without close(): a replica that dies hands nothing back.
    drop(a);
    let t0 = Instant::now();
    let up = Script::new(vec![OK]);
    let b = replica("fl-takeover", &url(&redis), &up, &[]);
    let o = ob(&b);
    drained(&o, 10).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "not before the claim idle time: {:?}",
        t0.elapsed()
    );
    let mut got = keys(&up);
    got.sort();
    ks.sort();
    assert_eq!(got, ks, "each write delivered once, none lost");
    let pending = redis.cli(&["XPENDING", q, "delivery", "-", "+", "10", &consumer]);
    assert_eq!(pending, "", "nothing left with the dead replica");
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_replica_that_closes_hands_its_writes_over_at_once() {
    require_redis();
    let redis = Server::start(&[]);
    let failing = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    let long = [("maxFailures", 1000.0), ("outboxClaimIdleMs", 20_000.0)];
    let a = replica("fl-handback", &url(&redis), &failing, &long);
    for i in 0..3 {
        queued(&write(&a, "POST", &format!("/h/{i}"), "{}").await);
    }
    let q = "dnastore:outbox:{fl-handback}:q";
    eventually(5, "A holds the writes", || async {
        redis.cli(&["XPENDING", q, "delivery"]).lines().next() == Some("3")
    })
    .await;
    // A rolling deploy: the old replica shuts down, the new one delivers what it held,
    // long before the 20 s claim idle time.
    a.close();
    // And its connection to Redis closes (it stayed open for the life of the process).
    eventually(5, "A's connection closed", || async {
        redis
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| !l.contains("cmd=client"))
            .count()
            == 0
    })
    .await;
    let up = Script::new(vec![OK]);
    let b = replica("fl-handback", &url(&redis), &up, &long);
    drained(&ob(&b), 3).await;
    assert_eq!(up.count(), 3);
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn consumers_long_gone_that_hold_nothing_are_forgotten() {
    require_redis();
    let redis = Server::start(&[]);
    let s = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused), OK]);
    let fast = [("outboxClaimIdleMs", 100.0)];
    let a = replica("fl-gone", &url(&redis), &s, &fast);
    queued(&write(&a, "POST", "/1", "{}").await);
    drained(&ob(&a), 5).await;
    let gone = ob(&a).fleet().unwrap().consumer().to_string();
    a.close();
    let t0 = Instant::now();
    let b = replica("fl-gone", &url(&redis), &s, &fast);
    let consumers = || {
        redis.cli(&[
            "XINFO",
            "CONSUMERS",
            "dnastore:outbox:{fl-gone}:q",
            "delivery",
        ])
    };
    assert!(consumers().contains(&gone));
    // Ten claim idle times (1 s) without a sign of life and nothing pending: removed.
    eventually(5, "the old consumer is forgotten", || async {
        !consumers().contains(&gone)
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "not before 10 claim idle times"
    );
    drop(b);
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn bounds_hold_across_replicas_and_a_full_outbox_answers_the_plain_fallback() {
    require_redis();
    let redis = Server::start(&[]);
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let bounded = [
        ("resetTimeout", 600_000.0),
        ("outboxMaxEntries", 3.0),
        ("outboxMaxBytes", 1450.0),
    ];
    let a = replica("fl-full", &url(&redis), &down, &bounded);
    let b = replica("fl-full", &url(&redis), &down, &bounded);
    let big = "x".repeat(600);
    assert!(matches!(
        write(&a, "POST", "/1", &big).await,
        CallOutcome::Queued(_)
    ));
    assert!(matches!(
        write(&b, "POST", "/2", &big).await,
        CallOutcome::Queued(_)
    ));
    // Bytes: two of ~675 (body, URL, kept headers) queued, a third would pass 1450.
    let used: u64 = redis
        .cli(&["GET", "dnastore:outbox:{fl-full}:bytes"])
        .parse()
        .unwrap();
    assert!((1300..1400).contains(&used), "{used}");
    match write(&a, "POST", "/3", &big).await {
        CallOutcome::Fallback(f) => assert_eq!(f.code, crate::Code::OpenBreaker),
        other => panic!("{other:?}"),
    }
    // Entries: a small third fits, a fourth does not, whichever replica asks.
    assert!(matches!(
        write(&b, "POST", "/4", "{}").await,
        CallOutcome::Queued(_)
    ));
    assert!(matches!(
        write(&a, "POST", "/5", "{}").await,
        CallOutcome::Fallback(_)
    ));
    let m = crate::metrics::render();
    assert!(
        m.contains("dnastore_outbox_refused_total{name=\"fl-full\",reason=\"full\"} 2"),
        "{m}"
    );
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_redis_outage_refuses_writes_with_the_plain_fallback_never_queued() {
    require_redis();
    let mut redis = Server::start(&["--requirepass", "hunter2"]);
    let port = redis.port;
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let secret_url = format!("redis://:hunter2@127.0.0.1:{port}");
    let b = replica(
        "fl-outage",
        &secret_url,
        &down,
        &[
            ("resetTimeout", 600_000.0),
            ("redisConnectTimeoutMs", 300.0),
        ],
    );
    assert!(matches!(
        write(&b, "POST", "/1", "{}").await,
        CallOutcome::Queued(_)
    ));
    redis.stop();
    let t0 = Instant::now();
    assert!(matches!(
        write(&b, "POST", "/2", "{}").await,
        CallOutcome::Fallback(_)
    ));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "bounded: {:?}",
        t0.elapsed()
    );
    // The reason names the store, never the password.
    let o = ob(&b);
    let req = b
        .prepare(&format!("{BASE}/3"), Some("POST"), &[], None)
        .unwrap();
    let mut call = Call::new(req);
    b.make_durable(&mut call, None).unwrap();
    match o.enqueue(&call.req, None, b.wall_ms()).await {
        Err(Refused::Store(e)) => {
            assert!(e.contains("outbox Redis redis://***@127.0.0.1"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let m = crate::metrics::render();
    assert!(
        m.contains("dnastore_outbox_refused_total{name=\"fl-outage\",reason=\"store_error\"} 2"),
        "{m}"
    );
    // Back (empty: this test's Redis keeps nothing on disk): writes are stored again, on
    // a connection reopened by itself.
    redis.restart();
    eventually(5, "queued again", || async {
        matches!(write(&b, "POST", "/4", "{}").await, CallOutcome::Queued(_))
    })
    .await;
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_replica_full_of_writes_in_backoff_sleeps_until_something_is_due() {
    require_redis();
    let redis = Server::start(&[]);
    let failing = Script::new(vec![Step::Reply(503, "text/plain", "")]);
    // One slot: it holds 4 of the 6 writes, each failed once and waiting at least 2 s.
    let slow = [
        ("maxFailures", 1000.0),
        ("outboxConcurrency", 1.0),
        ("retryBaseMs", 2000.0),
        ("outboxRetryMaxMs", 5000.0),
    ];
    let b = replica("fl-idle", &url(&redis), &failing, &slow);
    for i in 0..6 {
        queued(&write(&b, "POST", &format!("/w/{i}"), "{}").await);
    }
    eventually(5, "4 held and tried", || async { failing.count() >= 10 }).await;
    let o = ob(&b);
    let before = o.turns.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let turns = o.turns.load(std::sync::atomic::Ordering::Relaxed) - before;
    // Its own timers (claims every 200 ms, takeover every 300 ms, counts every second) and
    // nothing else: no read is due while it is full.
    assert!(turns < 40, "{turns} passes in a second");
    assert_eq!(failing.count(), 10, "nothing due yet");
}

/// The smallest grant the fleet outbox needs (docs/outbox.md: Fleet outbox on Redis Streams).
const GRANT: &[&str] = &[
    "ACL",
    "SETUSER",
    "fleet",
    "on",
    ">pw-hunter2",
    "resetkeys",
    "~dnastore:outbox:*",
    "resetchannels",
    "-@all",
    "+@stream",
    "+evalsha",
    "+script|load",
    "+hget",
    "+hset",
    "+hdel",
    "+hmget",
    "+get",
    "+set",
    "+incrby",
    "+decrby",
    "+rpush",
    "+lrem",
    "+lindex",
    "+lpop",
    "+ping",
];

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn the_documented_acl_grant_is_enough() {
    require_redis();
    let redis = Server::start(&[]);
    assert_eq!(redis.cli(GRANT), "OK");
    let acl = format!("redis://fleet:pw-hunter2@127.0.0.1:{}", redis.port);
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(422, "application/json", "{}"),
        OK,
        Step::Reply(422, "application/json", "{}"),
        OK,
    ]);
    let b = replica("fl-acl", &acl, &s, &[]);
    let o = ob(&b);
    let (id, _) = queued(&write(&b, "PUT", "/r/1", "{}").await);
    queued(&write(&b, "PUT", "/r/1", "{}").await);
    let one_dead =
        || async { o.dead_letters(10).await.unwrap().len() == 1 && o.queued_now().await == 0 };
    eventually(5, "one dead, one delivered", one_dead).await;
    assert!(o.retry(&id, b.wall_ms()).await.unwrap());
    eventually(5, "dead again", || async { s.count() == 4 }).await;
    eventually(5, "dead again", one_dead).await;
    assert!(o.discard(&id).await.unwrap());
    assert!(o.list(10).await.unwrap().is_empty());
    assert!(o.dead_letters(10).await.unwrap().is_empty());
    let m = crate::metrics::render();
    assert!(
        m.contains("dnastore_outbox_refused_total{name=\"fl-acl\",reason=\"store_error\"} 0"),
        "{m}"
    );
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_newer_write_of_a_key_on_another_replica_goes_behind_the_queued_one() {
    require_redis();
    let redis = Server::start(&[]);
    // A's upstream is down: it queues v1 of a resource and never delivers (open circuit).
    let down = Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)]);
    let a = replica(
        "fl-behind",
        &url(&redis),
        &down,
        &[("resetTimeout", 600_000.0)],
    );
    let (_, v1) = queued(&write(&a, "PUT", "/api/sigils/1", "{\"v\":1}").await);
    // B's upstream is up but slow, so v1 is still in line when v2 comes to B. Sent live,
    // v2 would land first and v1's replay would then overwrite it.
    let up = Script::new(vec![Step::After(Duration::from_millis(300), Box::new(OK))]);
    let b = replica("fl-behind", &url(&redis), &up, &[("maxFailures", 100.0)]);
    let v2 = write(&b, "PUT", "/api/sigils/1", "{\"v\":2}").await;
    let CallOutcome::Queued(q2) = &v2 else {
        panic!("v2 must be queued behind v1, got {v2:?}")
    };
    assert_eq!(q2.code, crate::Code::Ordered);
    drained(&ob(&b), 10).await;
    assert_eq!(keys(&up), [v1, q2.idempotency_key.clone()], "v1 then v2");
}
