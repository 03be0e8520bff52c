//! A call's `deadline` holds when it first waits on a hung Redis (SIGSTOP): a half-open
//! trial for its lease, a call right after start for the fleet's first read. The wait
//! comes out of the call's time, not on top of it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::breaker::{Breaker, Call, Deps, Transport};
use crate::config::{Config, RawOptions, RawValue};
use crate::error::FailureKind;
use crate::observer::StateKind;
use crate::redis::test_servers::{require_redis, Server};
use crate::rng::SplitMix64;
use crate::test_support::{eventually, Script, Step};

fn breaker(port: u16, script: &Arc<Script>) -> Arc<Breaker> {
    let n = RawValue::Number;
    let o = RawOptions::new()
        .set("name", RawValue::String(format!("fleet-deadline-{port}")))
        .set(
            "redisUrl",
            RawValue::String(format!("redis://127.0.0.1:{port}")),
        )
        .set("fleetCircuit", RawValue::String("on".into()))
        .set("fleetQuorum", n(1.0))
        .set("maxFailures", n(2.0))
        .set("volumeThreshold", n(1000.0))
        .set("resetTimeout", n(300.0))
        .set("halfOpenMaxCalls", n(1.0))
        .set("maxAttempts", n(1.0))
        .set("lkgMaxEntries", n(0.0))
        .set("timeout", n(10_000.0))
        .set("deadline", n(800.0))
        .set("redisResponseTimeoutMs", n(600.0))
        .set("redisConnectTimeoutMs", n(600.0));
    let cfg = Config::resolve(&o, &|_| None).expect("valid options");
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(7)),
        wall_origin: SystemTime::now(),
        runtime: Some(tokio::runtime::Handle::current()),
    };
    let b = Breaker::with_transport(cfg, deps, Transport::Script(script.clone())).unwrap();
    b.start();
    b
}

/// One GET; how long it took to settle.
async fn fire(b: &Arc<Breaker>) -> Duration {
    let req = b
        .prepare("http://dnastore.test/api/sigils", Some("GET"), &[], None)
        .unwrap();
    let t0 = Instant::now();
    match b.admit() {
        Some(p) => {
            b.clone().execute(p, Call::new(req)).await;
        }
        None => {
            b.rejected(Some(&req));
        }
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_trial_waiting_on_a_hung_redis_for_its_lease_still_ends_at_the_deadline() {
    require_redis();
    let srv = Server::start(&[]);
    // Two failures open the circuit (and, at quorum 1, the fleet); then DNAStore hangs.
    let script = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Hang,
    ]);
    let b = breaker(srv.port, &script);
    eventually(5, "connected to the fleet", || async {
        b.fleet_stats().is_some_and(|s| s.connected)
    })
    .await;
    fire(&b).await;
    fire(&b).await;
    eventually(5, "the fleet open", || async {
        b.fleet_stats()
            .is_some_and(|s| s.state != StateKind::Closed)
    })
    .await;
    // The open period ends; Redis hangs just before the trial asks for its lease.
    // (The circuit moves to half-open when a call asks; the fleet's view says the round is on.)
    eventually(5, "the fleet's round on", || async {
        b.fleet_stats()
            .is_some_and(|s| s.state == StateKind::HalfOpen)
    })
    .await;
    srv.signal("STOP");
    let took = fire(&b).await;
    srv.signal("CONT");
    assert_eq!(
        script.count(),
        3,
        "the trial was sent (on the local circuit)"
    );
    // 800 ms deadline; without the fix the lease's 600 ms came on top (about 1.4 s).
    assert!(
        took < Duration::from_millis(1_100),
        "a trial with an 800 ms deadline took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_call_waiting_for_the_fleets_first_read_on_a_hung_redis_still_ends_at_the_deadline() {
    require_redis();
    let srv = Server::start(&[]);
    // Redis hangs before the replica starts: its first read of the fleet never answers.
    srv.signal("STOP");
    let script = Script::new(vec![Step::Hang]);
    let b = breaker(srv.port, &script);
    let took = fire(&b).await;
    srv.signal("CONT");
    assert_eq!(script.count(), 1, "sent once the wait ended");
    // 800 ms deadline; without the fix the 600 ms wait came on top (about 1.4 s).
    assert!(
        took < Duration::from_millis(1_100),
        "a call with an 800 ms deadline took {took:?}"
    );
}
