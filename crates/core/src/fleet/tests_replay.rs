//! A genuine but old record replayed into Redis (the state key and the channel) by a
//! client that can write there but has no secret: refused as stale, nothing reopens.

use std::time::Duration;

use super::record::{Signer, StateRecord};
use super::scripts::Keys;
use super::tests_redis::{connected, Replica, SECRET};
use crate::observer::{FleetWhy, StateKind};
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn an_old_genuine_open_replayed_into_the_key_and_the_channel_reopens_nothing() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-replay";
    let a = Replica::new(&url, name, 1, &[]);
    connected(&[&a]).await;
    let signer = Signer::new(name, Some(SECRET));
    let keys = Keys::new(name);
    let now = a.b.wall_ms();
    let rec = |generation, open: bool| StateRecord {
        generation,
        open,
        until_ms: if open { now + 60_000 } else { 0 },
        at_ms: now,
        by: "web-1".into(),
        why: if open {
            FleetWhy::Quorum
        } else {
            FleetWhy::TrialsSucceeded
        },
        votes: if open { 2 } else { 0 },
        trials: 0,
    };
    // Genuine history: opened (generation 1), then closed (generation 2).
    let old_open = signer.state(&rec(1, true));
    srv.cli(&["SET", &keys.state, &old_open]);
    eventually(5, "the fleet's open followed", || async {
        a.b.fleet_stats().is_some_and(|s| s.generation == 1)
    })
    .await;
    let closed = signer.state(&rec(2, false));
    srv.cli(&["SET", &keys.state, &closed]);
    srv.cli(&["PUBLISH", &keys.channel, &closed]);
    eventually(5, "the fleet's close followed", || async {
        a.state() == StateKind::Closed && a.b.fleet_stats().is_some_and(|s| s.generation == 2)
    })
    .await;
    // The replay: the old open, on the channel and in the key.
    srv.cli(&["PUBLISH", &keys.channel, &old_open]);
    srv.cli(&["SET", &keys.state, &old_open]);
    eventually(5, "the replay refused as stale", || async {
        a.b.fleet_stats().is_some_and(|s| s.rejected >= 2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.fire().await;
    assert_eq!(a.state(), StateKind::Closed, "{:?}", a.log.lines());
    assert_eq!(a.sent(), 1, "the call went to DNAStore");
}
