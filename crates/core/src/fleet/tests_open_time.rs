//! Grown open periods with the fleet circuit (`resetTimeoutMax`, Retry-After), against a
//! real redis-server: the fleet's decision carries the open period the deciding replica's
//! circuit chose, so every replica stays open that long, and a close ends the growth on
//! every replica.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::tests_redis::{connected, Log, Replica};
use crate::breaker::{Breaker, Deps, Transport};
use crate::config::{Config, RawOptions, RawValue};
use crate::observer::StateKind;
use crate::redis::test_servers::{require_redis, Server};
use crate::rng::SplitMix64;
use crate::test_support::{eventually, Script, Step};

/// resetTimeout 400 ms, growing up to 6.4 s: after two failed trials in a row the open
/// period is 1.6 s jittered to between 0.8 and 1.6 s.
fn growing() -> [(&'static str, RawValue); 1] {
    [("resetTimeoutMax", RawValue::Number(6400.0))]
}

fn gen(r: &Replica) -> u64 {
    r.b.fleet_stats().map_or(0, |s| s.generation)
}

fn fleet_state(r: &Replica) -> StateKind {
    r.b.fleet_stats().map_or(StateKind::Closed, |s| s.state)
}

/// Fires on every replica until each follows an open decision of generation `g`.
async fn fire_until_open_at(rs: &[&Replica], g: u64, what: &str) {
    eventually(10, what, || async {
        for r in rs {
            r.fire().await;
        }
        rs.iter()
            .all(|r| gen(r) == g && r.state() == StateKind::Open)
    })
    .await;
}

fn open_left(rs: &[&Replica]) -> Vec<u64> {
    rs.iter()
        .map(|r| r.b.open_for().map_or(0, |d| d.as_millis() as u64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_failed_fleet_trial_holds_every_replica_for_the_grown_period_and_a_close_resets_it() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-grown";
    let a = Replica::new(&url, name, 1, &growing());
    let b = Replica::new(&url, name, 2, &growing());
    let c = Replica::new(&url, name, 3, &growing());
    let all = [&a, &b, &c];
    connected(&all).await;
    for r in all {
        r.up.store(false, Ordering::SeqCst);
    }
    // The fleet opens by quorum (generation 1), then two trials fail (2, 3).
    fire_until_open_at(&all, 1, "the fleet opened by quorum").await;
    fire_until_open_at(&all, 2, "a first trial failed").await;
    fire_until_open_at(&all, 3, "a second trial failed").await;
    let seen = Instant::now();
    // Every replica follows the decider's grown period (0.8 to 1.6 s, less the time it took
    // to arrive), not resetTimeout (400 ms).
    let left = open_left(&all);
    let (lo, hi) = (*left.iter().min().unwrap(), *left.iter().max().unwrap());
    assert!(
        lo > 600,
        "every replica open for the grown period: {left:?}"
    );
    assert!(
        hi - lo < 250,
        "every replica open as long as the others: {left:?}"
    );
    // No replica admits a trial before it ends, the store up again or not.
    let sent: usize = all.iter().map(|r| r.sent()).sum();
    for r in all {
        r.up.store(true, Ordering::SeqCst);
    }
    while seen.elapsed() + Duration::from_millis(100) < Duration::from_millis(lo) {
        for r in all {
            r.fire().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during: usize = all.iter().map(|r| r.sent()).sum();
    assert_eq!(during, sent, "no call went out while the fleet stayed open");
    // Then a trial closes the fleet (generation 4) ...
    eventually(10, "a trial closed the fleet", || async {
        for r in all {
            r.fire().await;
        }
        all.iter()
            .all(|r| gen(r) == 4 && fleet_state(r) == StateKind::Closed)
    })
    .await;
    // ... and the growth starts over on every replica: the next failed trial after the
    // next trip opens the fleet for at most twice resetTimeout (after three failed trials
    // in a row it would be 1.6 to 3.2 s).
    for r in all {
        r.up.store(false, Ordering::SeqCst);
    }
    fire_until_open_at(&all, 5, "the fleet opened by quorum again").await;
    fire_until_open_at(&all, 6, "a trial failed again").await;
    let left = open_left(&all);
    assert!(
        left.iter().all(|&l| l <= 800),
        "growth started over after the close: {left:?}"
    );
}

/// A replica whose every failure says `Retry-After: 2` (seconds).
fn retry_after_replica(url: &str, name: &str) -> (Arc<Breaker>, Arc<Script>) {
    let o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("redisUrl", RawValue::String(url.into()))
        .set("fleetCircuit", RawValue::String("on".into()))
        .set("fleetQuorum", RawValue::Number(1.0))
        .set(
            "signingSecret",
            RawValue::String(super::tests_redis::SECRET.into()),
        )
        .set("maxFailures", RawValue::Number(3.0))
        .set("volumeThreshold", RawValue::Number(1000.0))
        .set("resetTimeout", RawValue::Number(400.0))
        .set("maxAttempts", RawValue::Number(1.0))
        .set("lkgMaxEntries", RawValue::Number(0.0));
    let cfg = Config::resolve(&o, &|_| None).expect("valid options");
    let script = Script::new(vec![Step::ReplyRetryAfter(503, "2")]);
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(9)),
        wall_origin: SystemTime::now(),
        runtime: Some(tokio::runtime::Handle::current()),
    };
    let b =
        Breaker::with_transport(cfg, deps, Transport::Script(script.clone())).expect("a breaker");
    b.subscribe(Arc::new(Log::default()));
    b.start();
    (b, script)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_retry_after_on_the_trip_holds_every_replica_open() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-retry-after";
    let (a, _script) = retry_after_replica(&url, name);
    let b = Replica::new(&url, name, 2, &[("fleetQuorum", RawValue::Number(1.0))]);
    eventually(5, "both replicas connected", || async {
        [&a, &b.b]
            .iter()
            .all(|r| r.fleet_stats().is_some_and(|s| s.connected))
    })
    .await;
    // A trips on three 503s that say Retry-After: 2 s (quorum 1: its trip opens the fleet).
    for _ in 0..3 {
        let req = a
            .prepare("http://dnastore.test/api/sigils", Some("GET"), &[], None)
            .expect("valid request");
        if let Some(p) = a.admit() {
            a.clone().execute(p, crate::breaker::Call::new(req)).await;
        }
    }
    eventually(5, "B follows the fleet's open", || async {
        b.state() == StateKind::Open
    })
    .await;
    // B never saw the answer, yet stays open as long as A's circuit chose: 2 s, not
    // resetTimeout (400 ms).
    let left = b.b.open_for().map_or(0, |d| d.as_millis() as u64);
    assert!(left > 1500, "B held open by A's Retry-After: {left} ms");
    let sent = b.sent();
    b.up.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while start.elapsed() + Duration::from_millis(100) < Duration::from_millis(left) {
        b.fire().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.sent(), sent, "B sent nothing while held open");
    b.b.close();
    a.close();
}
