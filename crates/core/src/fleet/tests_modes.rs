//! The fleet circuit through the other forms `redisUrl` takes: an ACL user with the
//! documented grant, TLS with a private CA (`redisCaFile`), Sentinel with a failover during
//! an outage. The replicas and helpers are `tests_redis.rs`'s.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::scripts::Keys;
use super::tests_redis::{connected, Replica};
use crate::config::RawValue;
use crate::observer::StateKind;
use crate::redis::test_servers::{
    require_redis, tls_server, wait_for, SentinelSet, Server, TempDir,
};
use crate::test_support::eventually;

/// The smallest ACL grant the docs give for the fleet circuit.
pub(super) const GRANT: &[&str] = &[
    "ACL",
    "SETUSER",
    "fleet",
    "on",
    ">pw-hunter2",
    "resetkeys",
    "~dnastore:fleet:*",
    "resetchannels",
    "&dnastore:fleet:*",
    "-@all",
    "+evalsha",
    "+script|load",
    "+subscribe",
    "+ping",
    "+zrem",
    "+get",
    "+set",
    "+del",
    "+incr",
    "+pexpire",
    "+pttl",
    "+hset",
    "+hvals",
    "+publish",
    "+zadd",
    "+zremrangebyscore",
    "+zcard",
    "+time",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn the_documented_acl_grant_is_enough() {
    require_redis();
    let srv = Server::start(&[]);
    assert_eq!(srv.cli(GRANT), "OK");
    let url = format!("redis://fleet:pw-hunter2@127.0.0.1:{}", srv.port);
    let name = "fleet-acl";
    let a = Replica::new(&url, name, 1, &[]);
    let b = Replica::new(&url, name, 2, &[]);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    b.fire().await;
    eventually(5, "the fleet open", || async {
        b.state() == StateKind::Open && b.log.has("open:fleet:quorum")
    })
    .await;
    a.up.store(true, Ordering::SeqCst);
    b.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let _ = tokio::join!(a.fire(), b.fire());
    eventually(5, "closed together", || async {
        a.state() == StateKind::Closed && b.state() == StateKind::Closed
    })
    .await;
    for r in [&a, &b] {
        assert!(!r.log.has("fleet:disconnected"), "{:?}", r.log.lines());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_sentinel_failover_during_an_outage_is_followed() {
    require_redis();
    let SentinelSet {
        mut master,
        replica,
        sentinels: _sentinels,
        url,
    } = SentinelSet::start();
    let name = "fleet-sentinel";
    let slow = [("resetTimeout", RawValue::Number(1500.0))];
    let a = Replica::new(&url, name, 1, &slow);
    let b = Replica::new(&url, name, 2, &slow);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    b.fire().await;
    eventually(5, "the fleet open", || async {
        a.b.fleet_stats()
            .is_some_and(|s| s.state == StateKind::Open)
            && b.state() == StateKind::Open
    })
    .await;
    wait_for(Duration::from_secs(15), "the open replicated", || {
        replica
            .cli(&["GET", &Keys::new(name).state])
            .starts_with("s1|1|o|")
    });
    master.stop();
    let killed = Instant::now();
    eventually(20, "both reconnected to the new master", || async {
        [&a, &b].iter().all(|r| r.log.count("fleet:connected") >= 2)
    })
    .await;
    eprintln!(
        "sentinel failover: the fleet reconnected {} ms after the master was killed",
        killed.elapsed().as_millis()
    );
    assert!(replica.cli(&["ROLE"]).starts_with("master"));
    // The outage goes on; the fleet's decisions go on through the new master: the next
    // round's trial fails and reopens both, then DNAStore is back and one trial closes both.
    let until = Instant::now() + Duration::from_secs(10);
    while a.b.fleet_stats().unwrap().generation < 2 {
        assert!(Instant::now() < until, "{:?}", a.log.lines());
        let _ = tokio::join!(a.fire(), b.fire());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.up.store(true, Ordering::SeqCst);
    b.up.store(true, Ordering::SeqCst);
    let until = Instant::now() + Duration::from_secs(10);
    while !(a.state() == StateKind::Closed && b.state() == StateKind::Closed) {
        assert!(
            Instant::now() < until,
            "{:?} {:?}",
            a.log.lines(),
            b.log.lines()
        );
        let _ = tokio::join!(a.fire(), b.fire());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replica
        .cli(&["GET", &Keys::new(name).state])
        .contains("|c|"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn over_tls_with_a_private_ca_the_fleet_opens_and_closes() {
    require_redis();
    let dir = TempDir::new("fleet-tls");
    let srv = tls_server(&dir);
    let url = format!("rediss://127.0.0.1:{}", srv.port);
    let ca = RawValue::String(dir.path("ca.crt").display().to_string());
    let name = "fleet-tls";
    let a = Replica::new(&url, name, 1, &[("redisCaFile", ca.clone())]);
    let b = Replica::new(&url, name, 2, &[("redisCaFile", ca)]);
    connected(&[&a, &b]).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        a.fire().await;
    }
    b.fire().await;
    eventually(5, "the fleet open", || async {
        b.state() == StateKind::Open && b.log.has("open:fleet:quorum")
    })
    .await;
    assert!(srv
        .cli(&["GET", &Keys::new(name).state])
        .starts_with("s1|1|o|"));
    a.up.store(true, Ordering::SeqCst);
    b.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let _ = tokio::join!(a.fire(), b.fire());
    eventually(5, "closed together", || async {
        a.state() == StateKind::Closed && b.state() == StateKind::Closed
    })
    .await;
    for r in [&a, &b] {
        assert!(!r.log.has("fleet:disconnected"), "{:?}", r.log.lines());
    }
}
