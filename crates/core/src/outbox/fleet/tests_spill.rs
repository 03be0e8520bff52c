//! The fleet outbox's spill (`outbox/spill/`) against a real redis-server: writes Redis
//! cannot take (stopped, or SIGSTOPped: slower than redisResponseTimeoutMs) are stored in
//! the replica's file and acknowledged; once Redis answers they are forwarded and delivered
//! once, with their ids and keys; a replica that dies between forwarding and its local
//! delete sends nothing twice; a full spill, and a write with an ordering key, get the
//! plain fallback. Breakers in this process stand in for replicas (as `tests.rs`); one
//! whose circuit never closes (`resetTimeout` of ten minutes) queues and never delivers, so
//! each test decides which replica delivers. Real time, bounded waits.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::tests_support::{drained, keys, ob, queued, replica, replica_with, url, write, OK};
use super::{Fleet, Forwarded, Spilled};
use crate::breaker::Breaker;
use crate::error::FailureKind;
use crate::outbox::spill::Spill;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server, TempDir};
use crate::test_support::{eventually, Script, Step};

/// Never delivers: DNAStore refuses and the circuit, once open, stays open.
const WRITER: [(&str, f64); 3] = [
    ("resetTimeout", 600_000.0),
    ("redisConnectTimeoutMs", 300.0),
    ("redisResponseTimeoutMs", 300.0),
];

fn down() -> Arc<Script> {
    Script::new(vec![Step::Fail(FailureKind::ConnectionRefused)])
}

fn metric(line: &str) -> bool {
    crate::metrics::render().contains(line)
}

/// `n` durable POSTs through `b`, each answered `queued` within a second: (id, key) each.
async fn spill_posts(b: &Arc<Breaker>, n: usize) -> Vec<(String, String)> {
    let mut out = vec![];
    for i in 0..n {
        let t0 = Instant::now();
        let o = write(b, "POST", &format!("/api/sigils?i={i}"), "{}").await;
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        out.push(queued(&o));
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn writes_redis_cannot_take_are_spilled_acknowledged_then_forwarded_and_delivered_once() {
    require_redis();
    let mut redis = Server::start(&[]);
    let dir = TempDir::new("spill-basic");
    let name = "fl-spill";
    let a = replica_with(name, &url(&redis), &down(), &WRITER, Some(&dir.0));
    redis.stop();
    let written = spill_posts(&a, 5).await;
    // On this replica's disk, synced, before each caller heard `queued`.
    assert!(dir.path("fl-spill.spill.sqlite").is_file());
    let st = ob(&a).stats(a.wall_ms());
    assert_eq!((st.spilled, st.enqueued, st.entries), (5, 5, 0));
    assert!(st.oldest_age.is_some(), "the oldest write is a spilled one");
    assert!(metric(
        "dnastore_outbox_spilled_entries{name=\"fl-spill\"} 5"
    ));
    assert!(metric(
        "dnastore_outbox_spilled_total{name=\"fl-spill\",reason=\"unreachable\"} 5"
    ));
    assert!(metric(
        "dnastore_outbox_refused_total{name=\"fl-spill\",reason=\"store_error\"} 0"
    ));
    // Redis back (empty: this test's Redis keeps nothing on disk): forwarded by the writer,
    // whose circuit is open (forwarding goes to Redis, not DNAStore), oldest first.
    redis.restart();
    let o = ob(&a);
    eventually(10, "forwarded", || async { o.stats(0).spilled == 0 }).await;
    let st = o.stats(0);
    assert_eq!(st.forwarded, 5);
    let listed = o.list(10).await.unwrap();
    assert_eq!(
        listed.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        written.iter().map(|w| w.0.clone()).collect::<Vec<_>>(),
        "the same ids, oldest first"
    );
    assert!(listed.iter().all(|l| !l.spilled));
    assert!(metric(
        "dnastore_outbox_forwarded_total{name=\"fl-spill\"} 5"
    ));
    assert!(metric(
        "dnastore_outbox_spilled_entries{name=\"fl-spill\"} 0"
    ));
    // Another replica delivers them: each once, with the key its caller was given.
    let up = Script::new(vec![OK]);
    let b = replica(name, &url(&redis), &up, &[]);
    drained(&ob(&b), 10).await;
    assert_eq!(
        sorted(keys(&up)),
        sorted(written.into_iter().map(|w| w.1).collect())
    );
    drop(a);
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_redis_slower_than_its_response_timeout_gets_the_write_spilled_and_it_lands_once() {
    require_redis();
    let redis = Server::start(&[]);
    let dir = TempDir::new("spill-slow");
    let name = "fl-spill-slow";
    let a = replica_with(name, &url(&redis), &down(), &WRITER, Some(&dir.0));
    // The first write opens the circuit and goes to the stream (the connection is open).
    let first = queued(&write(&a, "POST", "/api/sigils", "{}").await);
    assert_eq!(
        redis.cli(&["XLEN", "dnastore:outbox:{fl-spill-slow}:q"]),
        "1"
    );
    // Redis stops answering: the next write's script waits redisResponseTimeoutMs (300),
    // then the write is spilled. Redis may still run that script once it wakes up.
    redis.signal("STOP");
    let t0 = Instant::now();
    let second = queued(&write(&a, "POST", "/api/sigils", "{}").await);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert!(metric(
        "dnastore_outbox_spilled_total{name=\"fl-spill-slow\",reason=\"timeout\"} 1"
    ));
    redis.signal("CONT");
    let o = ob(&a);
    eventually(10, "forwarded", || async { o.stats(0).spilled == 0 }).await;
    // In the stream once, whether the late script or the forward put it there.
    assert_eq!(
        redis.cli(&["XLEN", "dnastore:outbox:{fl-spill-slow}:q"]),
        "2"
    );
    let up = Script::new(vec![OK]);
    let b = replica(name, &url(&redis), &up, &[]);
    drained(&ob(&b), 10).await;
    assert_eq!(sorted(keys(&up)), sorted(vec![first.1, second.1]));
    drop(a);
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_replica_that_dies_between_forwarding_and_its_local_delete_delivers_nothing_twice() {
    require_redis();
    let mut redis = Server::start(&[]);
    let dir = TempDir::new("spill-crash");
    let name = "fl-spill-crash";
    let a = replica_with(name, &url(&redis), &down(), &WRITER, Some(&dir.0));
    let cfg = a.config().outbox.clone();
    redis.stop();
    let written = spill_posts(&a, 4).await;
    // The replica dies (dropped, never closed) with its writes spilled. Once its delivery
    // loop has ended, its file is free.
    drop(a);
    let lock = dir.path("fl-spill-crash.spill.lock");
    eventually(5, "the dead replica's file is free", || async {
        let f = std::fs::File::open(&lock).unwrap();
        // Unlocked before the close: a child another test forks meanwhile shares the
        // descriptor until it execs, and would keep the lock past the close (sqlite/lock.rs).
        f.try_lock().is_ok() && f.unlock().is_ok()
    })
    .await;
    // What it had done before it died: forwarded every write to Redis (acknowledged), and
    // not yet removed them from its file.
    redis.restart();
    let opened = Spill::open(&dir.0, name, 100, 1 << 20).unwrap();
    assert_eq!(opened.pending.len(), 4);
    let sp = opened.spill;
    let batch = sp.claim(64, 1 << 20);
    let stored = sp.stored(&batch).await.unwrap();
    let writes: Vec<Spilled<'_>> = batch
        .iter()
        .zip(&stored)
        .map(|(m, (blob, mac))| Spilled {
            id: &m.id,
            ordering_key: None,
            created_at_ms: m.created_at_ms,
            size: m.size,
            blob,
            mac: mac.as_deref(),
        })
        .collect();
    let fleet = Fleet::new(name, &cfg).unwrap();
    let got = fleet
        .forward(&writes, 100, 1 << 20, 86_400_000)
        .await
        .unwrap();
    assert_eq!(got, vec![Forwarded::Added; 4]);
    drop(writes);
    sp.close();
    drop(sp);
    // Another replica delivers them.
    let up = Script::new(vec![OK]);
    let b = replica(name, &url(&redis), &up, &[]);
    drained(&ob(&b), 10).await;
    assert_eq!(keys(&up).len(), 4);
    // The dead replica's file is taken over (a restart on its directory): what it holds is
    // forwarded again, and Redis, which had it, adds nothing.
    let c = replica_with(name, &url(&redis), &up, &[], Some(&dir.0));
    let oc = ob(&c);
    eventually(10, "the file is emptied", || async {
        oc.stats(0).spilled == 0
    })
    .await;
    drained(&ob(&b), 10).await;
    assert_eq!(oc.stats(0).forwarded, 0, "nothing added again");
    assert_eq!(
        sorted(keys(&up)),
        sorted(written.into_iter().map(|w| w.1).collect()),
        "each delivered once"
    );
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_full_spill_and_a_write_with_an_ordering_key_get_the_plain_fallback() {
    require_redis();
    let mut redis = Server::start(&[]);
    let dir = TempDir::new("spill-full");
    let name = "fl-spill-full";
    let mut opts = WRITER.to_vec();
    opts.push(("outboxMaxEntries", 2.0));
    let a = replica_with(name, &url(&redis), &down(), &opts, Some(&dir.0));
    redis.stop();
    // A PUT has an ordering key (its URL): its order against the resource's writes in Redis
    // and on other replicas could not be kept from here, so it is refused, not spilled.
    match write(&a, "PUT", "/api/sigils/1", "{}").await {
        CallOutcome::Fallback(_) => {}
        other => panic!("a keyed write is not spilled: {other:?}"),
    }
    assert!(metric(
        "dnastore_outbox_refused_total{name=\"fl-spill-full\",reason=\"ordering_key\"} 1"
    ));
    spill_posts(&a, 2).await;
    match write(&a, "POST", "/api/sigils", "{}").await {
        CallOutcome::Fallback(_) => {}
        other => panic!("the spill is full: {other:?}"),
    }
    assert!(metric(
        "dnastore_outbox_refused_total{name=\"fl-spill-full\",reason=\"full\"} 1"
    ));
    assert_eq!(ob(&a).stats(0).spilled, 2);
}

#[tokio::test]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn an_enqueue_that_reaches_redis_after_its_write_was_forwarded_adds_nothing() {
    // The other order of the race the slow-Redis test shows: the replica gave up on its
    // enqueue, spilled the write and forwarded it, and only then does Redis run the first
    // script (it sat in a connection's buffer). The write must be in the stream once.
    require_redis();
    let redis = Server::start(&[]);
    let b = replica("fl-spill-late", &url(&redis), &down(), &WRITER);
    let cfg = b.config().outbox.clone();
    let fleet = Fleet::new("fl-spill-late", &cfg).unwrap();
    let blob = b"a write".to_vec();
    let spilled = Spilled {
        id: "w-late",
        ordering_key: None,
        created_at_ms: 1,
        size: 7,
        blob: &blob,
        mac: None,
    };
    assert_eq!(
        fleet
            .forward(&[spilled], 100, 1 << 20, 60_000)
            .await
            .unwrap(),
        [Forwarded::Added]
    );
    let late = fleet
        .enqueue("w-late", None, 1, 7, &blob, None, 100, 1 << 20)
        .await
        .unwrap();
    assert!(late.is_some(), "acknowledged: the write is there");
    assert_eq!(
        redis.cli(&["XLEN", "dnastore:outbox:{fl-spill-late}:q"]),
        "1"
    );
    assert_eq!(
        redis.cli(&["GET", "dnastore:outbox:{fl-spill-late}:bytes"]),
        "7"
    );
}
