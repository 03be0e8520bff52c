//! Replicas whose wall clocks disagree, against a real redis-server: a decision stamped by
//! a host whose clock is far ahead holds no replica open longer than its own configuration
//! lets its circuit stay open (resetTimeout, resetTimeoutMax, retryAfterMaxMs: the longest).

use std::sync::atomic::Ordering;

use super::record::{Signer, StateRecord};
use super::scripts::Keys;
use super::tests_redis::{connected, Replica};
use crate::config::RawValue;
use crate::observer::{FleetWhy, StateKind};
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_decision_from_a_clock_an_hour_ahead_delays_no_trial_past_the_longest_open_period() {
    require_redis();
    let srv = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", srv.port);
    let name = "fleet-skewed";
    // The longest open period this replica allows: resetTimeoutMax, 1 s (a Retry-After
    // holds nothing: retryAfterMaxMs 0).
    let longest = [
        ("resetTimeoutMax", RawValue::Number(1000.0)),
        ("retryAfterMaxMs", RawValue::Number(0.0)),
    ];
    let a = Replica::new(&url, name, 1, &longest);
    connected(&[&a]).await;
    // Another replica, whose clock is an hour ahead, opened the fleet (genuine, signed) and
    // then went away: its open period ends an hour from now by this replica's clock.
    let hour = 3_600_000;
    let skewed = a.b.wall_ms() + hour;
    let open = StateRecord {
        generation: 1,
        open: true,
        until_ms: skewed + 400,
        at_ms: skewed,
        by: "skewed-host".into(),
        why: FleetWhy::Quorum,
        votes: 2,
        trials: 0,
    };
    let rec = Signer::new(name, Some(super::tests_redis::SECRET)).state(&open);
    let keys = Keys::new(name);
    srv.cli(&["SET", &keys.state, &rec]);
    srv.cli(&["PUBLISH", &keys.channel, &rec]);
    eventually(5, "the replica follows the decision", || async {
        a.state() != StateKind::Closed
    })
    .await;
    let left = a.b.open_for().unwrap_or_default();
    assert!(
        left <= std::time::Duration::from_millis(1000),
        "held no longer than its longest open period: {left:?}"
    );
    // Its own circuit half-opens after that (1 s); its trial takes the round's lease,
    // succeeds, and closes the fleet (halfOpenMaxCalls 1).
    a.up.store(true, Ordering::SeqCst);
    eventually(
        5,
        "a trial closed the fleet well before the hour",
        || async {
            a.fire().await;
            a.state() == StateKind::Closed
                && a.b
                    .fleet_stats()
                    .is_some_and(|s| s.state == StateKind::Closed && s.generation == 2)
        },
    )
    .await;
    assert!(a.sent() >= 1, "{:?}", a.log.lines());
}
