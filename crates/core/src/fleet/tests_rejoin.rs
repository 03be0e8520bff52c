//! Rejoining the fleet after Redis was away (real redis-server, real time, bounded waits):
//! what a replica brings back from its time alone.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::scripts::Keys;
use super::tests_redis::{connected, Replica};
use crate::config::RawValue;
use crate::observer::StateKind;
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

// Found by the chaos run (`dnastore-and-redis-down`): every replica tripped alone while
// Redis was down, closed again on a successful trial once DNAStore was back, and then, on
// Redis's return, voted the old trip: two such votes made a quorum and opened the whole
// fleet, for a resetTimeout, after DNAStore had recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_trip_recovered_from_while_redis_was_away_is_not_voted_on_return() {
    require_redis();
    let mut srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-rejoin-recovered";
    // The window (rollingCountTimeout) long enough that the trips are still in it on return.
    let long = [("rollingCountTimeout", RawValue::Number(30000.0))];
    let a = Replica::new(&url, name, 1, &long);
    let b = Replica::new(&url, name, 2, &long);
    connected(&[&a, &b]).await;
    srv.stop();
    eventually(5, "both disconnected", || async {
        [&a, &b].iter().all(|r| r.log.has("fleet:disconnected"))
    })
    .await;
    // DNAStore fails: each opens alone, on its own evidence.
    for r in [&a, &b] {
        r.up.store(false, Ordering::SeqCst);
        for _ in 0..3 {
            r.fire().await;
        }
        assert_eq!(r.state(), StateKind::Open, "{:?}", r.log.lines());
    }
    // DNAStore is back: each closes on its own trial after resetTimeout (400 ms).
    for r in [&a, &b] {
        r.up.store(true, Ordering::SeqCst);
    }
    eventually(5, "both closed on their own trials", || async {
        for r in [&a, &b] {
            r.fire().await;
        }
        a.state() == StateKind::Closed && b.state() == StateKind::Closed
    })
    .await;
    srv.restart();
    eventually(10, "both reconnected", || async {
        [&a, &b]
            .iter()
            .all(|r| r.b.fleet_stats().is_some_and(|s| s.connected))
    })
    .await;
    // Time for votes sent on return to be stored, heard and counted.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for r in [&a, &b] {
        assert_eq!(r.state(), StateKind::Closed, "{:?}", r.log.lines());
        assert!(!r.log.has("open:fleet"), "{:?}", r.log.lines());
    }
    assert_eq!(srv.cli(&["EXISTS", &Keys::new(name).state]), "0");
    assert_eq!(srv.cli(&["HLEN", &Keys::new(name).votes]), "0");
}
