//! The fleet outbox when a replica shuts down with durable writes in flight (issue 25): each
//! is queued to Redis, with its Idempotency-Key, before its call settles, and another
//! replica delivers it; with Redis down, each is spilled to the replica's file and the next
//! process on its directory forwards it, or, without a spill, each call reports that its
//! write was not queued, within the bound. Real redis-server, real time, bounded waits (as
//! `tests.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::tests_support::{drained, keys, ob, replica, replica_with, url};
use crate::breaker::{Breaker, Call};
use crate::error::Code;
use crate::outbox::SHUTDOWN_QUEUE_TIMEOUT;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::{require_redis, Server, TempDir};
use crate::test_support::{eventually, Script, Step};

/// Attempts that never end by themselves: the calls are still in flight at shutdown.
const SLOW: [(&str, f64); 2] = [("timeout", 600_000.0), ("deadline", 600_000.0)];

/// Starts a durable POST per key and waits until the upstream has seen each.
async fn in_flight(
    b: &Arc<Breaker>,
    up: &Arc<Script>,
    keys: &[String],
) -> Vec<tokio::task::JoinHandle<CallOutcome>> {
    let calls = keys
        .iter()
        .map(|k| {
            let headers = [("idempotency-key".to_string(), k.clone())];
            let req = b
                .prepare(
                    "http://127.0.0.1:9/api/sigils",
                    Some("POST"),
                    &headers,
                    None,
                )
                .unwrap();
            let mut call = Call::new(req);
            b.make_durable(&mut call, None).unwrap();
            let permit = b.admit().unwrap();
            tokio::spawn(b.clone().execute(permit, call))
        })
        .collect();
    eventually(10, "every write in flight", || async {
        up.count() == keys.len()
    })
    .await;
    calls
}

async fn outcomes(calls: Vec<tokio::task::JoinHandle<CallOutcome>>) -> Vec<CallOutcome> {
    let mut out = vec![];
    for c in calls {
        let o = tokio::time::timeout(SHUTDOWN_QUEUE_TIMEOUT + Duration::from_secs(2), c)
            .await
            .expect("settled within the shutdown bound")
            .unwrap();
        out.push(o);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn durable_writes_in_flight_at_shutdown_are_queued_to_redis_and_delivered_by_another() {
    require_redis();
    let redis = Server::start(&[]);
    let hang = Script::new(vec![Step::Hang]);
    let a = replica("fl-shutdown", &url(&redis), &hang, &SLOW);
    let want: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    let calls = in_flight(&a, &hang, &want).await;
    a.close();
    for o in outcomes(calls).await {
        match o {
            CallOutcome::Queued(q) => assert_eq!(q.code, Code::Shutdown),
            other => panic!("a durable write in flight at shutdown is queued: {other:?}"),
        }
    }
    // In Redis before the calls settled.
    assert_eq!(redis.cli(&["XLEN", "dnastore:outbox:{fl-shutdown}:q"]), "5");
    let up = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let b = replica("fl-shutdown", &url(&redis), &up, &[]);
    drained(&ob(&b), 10).await;
    let mut got = keys(&up);
    got.sort();
    assert_eq!(got, want, "delivered by another replica, with their keys");
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn with_redis_down_at_shutdown_each_write_in_flight_is_reported_within_the_bound() {
    require_redis();
    let mut redis = Server::start(&[]);
    let hang = Script::new(vec![Step::Hang]);
    let mut opts = SLOW.to_vec();
    opts.push(("redisConnectTimeoutMs", 300.0));
    let a = replica("fl-shutdown-down", &url(&redis), &hang, &opts);
    let want: Vec<String> = (0..3).map(|i| format!("d{i}")).collect();
    let calls = in_flight(&a, &hang, &want).await;
    redis.stop();
    let t0 = tokio::time::Instant::now();
    a.close();
    for o in outcomes(calls).await {
        match o {
            CallOutcome::Rejected(r) if r.code == Code::Shutdown => assert!(
                r.message
                    .contains("could not be queued (outbox Redis redis://127.0.0.1"),
                "{}",
                r.message
            ),
            other => panic!("reported as not queued: {other:?}"),
        }
    }
    assert!(
        t0.elapsed() <= SHUTDOWN_QUEUE_TIMEOUT + Duration::from_secs(1),
        "bounded: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn with_redis_down_at_shutdown_writes_in_flight_are_spilled_and_the_next_process_forwards_them(
) {
    require_redis();
    let mut redis = Server::start(&[]);
    let dir = TempDir::new("spill-shutdown");
    let hang = Script::new(vec![Step::Hang]);
    let mut opts = SLOW.to_vec();
    opts.push(("redisConnectTimeoutMs", 300.0));
    let name = "fl-shutdown-spill";
    let a = replica_with(name, &url(&redis), &hang, &opts, Some(&dir.0));
    let want: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
    let calls = in_flight(&a, &hang, &want).await;
    redis.stop();
    a.close();
    for o in outcomes(calls).await {
        match o {
            CallOutcome::Queued(q) => assert_eq!(q.code, Code::Shutdown),
            other => panic!("spilled and queued: {other:?}"),
        }
    }
    drop(a);
    // The file is released once those writes are in it; the next process on the directory
    // takes it over and forwards them, and any replica delivers them.
    redis.restart();
    let up = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let b = replica_with(name, &url(&redis), &up, &[], Some(&dir.0));
    let o = ob(&b);
    eventually(10, "forwarded and delivered", || async {
        o.stats(0).spilled == 0 && up.count() == 3
    })
    .await;
    drained(&o, 10).await;
    let mut got = keys(&up);
    got.sort();
    assert_eq!(got, want);
    b.close();
}
