//! An ACL grant too narrow for the fleet circuit (one command of the documented grant
//! missing): every call still settles within its timeout and the replica's own circuit
//! decides, as with Redis down.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::tests_modes::GRANT;
use super::tests_redis::Replica;
use crate::observer::StateKind;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

async fn with_grant_minus(missing: &str) {
    let srv = Server::start(&[]);
    let grant: Vec<&str> = GRANT.iter().copied().filter(|c| *c != missing).collect();
    assert_eq!(grant.len(), GRANT.len() - 1, "{missing} is in the grant");
    assert_eq!(srv.cli(&grant), "OK");
    let url = format!("redis://fleet:pw-hunter2@127.0.0.1:{}", srv.port);
    let name = format!("fleet-acl-no{}", missing.replace(['+', '|'], "-"));
    let a = Replica::new(&url, &name, 1, &[]);
    a.up.store(false, Ordering::SeqCst);
    // The local circuit's rule (maxFailures 3): three failures open it; each call settles
    // well within its timeout (10 s) plus redisResponseTimeoutMs (300 ms).
    for i in 0..3 {
        let t0 = Instant::now();
        let out = a.fire().await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "call {i} without {missing} took {:?}",
            t0.elapsed()
        );
        assert!(matches!(out, CallOutcome::Fallback(_)), "call {i}: {out:?}");
    }
    eventually(3, "the replica's own circuit opened", || async {
        a.state() == StateKind::Open
    })
    .await;
    let t0 = Instant::now();
    a.fire().await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a short-circuited call waited"
    );
    // Back after resetTimeout: its own trial closes it (no lease to wait for).
    a.up.store(true, Ordering::SeqCst);
    eventually(5, "closed by its own trial", || async {
        let t0 = Instant::now();
        a.fire().await;
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "a trial waited {:?}",
            t0.elapsed()
        );
        a.state() == StateKind::Closed
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn without_evalsha_the_replica_runs_on_its_own_circuit() {
    require_redis();
    with_grant_minus("+evalsha").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn without_subscribe_the_replica_runs_on_its_own_circuit() {
    require_redis();
    with_grant_minus("+subscribe").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn without_publish_the_replica_runs_on_its_own_circuit() {
    require_redis();
    with_grant_minus("+publish").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn without_set_the_replica_runs_on_its_own_circuit() {
    require_redis();
    with_grant_minus("+set").await;
}
