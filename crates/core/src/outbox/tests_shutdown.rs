//! Durable writes in flight when the breaker shuts down (a rolling deploy's SIGTERM): their
//! outcome is unknown, so each is queued with its Idempotency-Key before its call settles,
//! and the next process on the same directory delivers it; one the outbox cannot take is
//! reported, never dropped (issue 25). Real time on a multi-thread runtime (the store syncs
//! on the blocking pool), every wait bounded. The fleet's: `fleet/tests_shutdown.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{breaker, config, seen, settle, write, Dir};
use super::SHUTDOWN_QUEUE_TIMEOUT;
use crate::breaker::{Breaker, Call};
use crate::config::RawValue;
use crate::error::Code;
use crate::outcome::CallOutcome;
use crate::test_support::{eventually, Script, Step};

/// Attempts that never end by themselves: the calls are still in flight at shutdown.
const SLOW: [(&str, RawValue); 2] = [
    ("timeout", RawValue::Number(600_000.0)),
    ("deadline", RawValue::Number(600_000.0)),
];

/// Starts durable POSTs with Idempotency-Keys `keys` against `b` and waits until the
/// upstream has seen each of them.
async fn in_flight(
    b: &Arc<Breaker>,
    up: &Arc<Script>,
    keys: &[String],
) -> Vec<tokio::task::JoinHandle<CallOutcome>> {
    let calls = keys
        .iter()
        .map(|k| {
            let (b, k) = (b.clone(), k.clone());
            tokio::spawn(async move {
                write(
                    &b,
                    "POST",
                    "/api/sigils",
                    &[("idempotency-key", k.as_str())],
                )
                .await
            })
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
async fn durable_writes_in_flight_at_shutdown_are_queued_then_delivered_by_the_next_process() {
    let dir = Dir::new("shutdown");
    let hang = Script::new(vec![Step::Hang]);
    let cfg = config("ob-shutdown", &dir, &SLOW);
    let b = breaker(cfg.clone(), &hang);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let calls = in_flight(&b, &hang, &keys).await;
    // The last handle's shutdown(): the breaker closes, and its outbox with it.
    b.close();
    let mut queued = vec![];
    for o in outcomes(calls).await {
        match o {
            CallOutcome::Queued(q) => {
                assert_eq!(q.code, Code::Shutdown);
                queued.push(q.idempotency_key);
            }
            other => panic!("a durable write in flight at shutdown is queued: {other:?}"),
        }
    }
    queued.sort();
    assert_eq!(queued, keys);
    drop(b);
    // The next process on the same directory (the store closed once the last was queued):
    // it finds the ten and delivers them with their keys.
    let up = Script::new(vec![Step::Reply(201, "application/json", "{}")]);
    let b = breaker(cfg, &up);
    assert_eq!(b.outbox().unwrap().stats(b.wall_ms()).entries, 10);
    settle(&b, Duration::from_secs(10)).await;
    let mut delivered: Vec<String> = seen(&up).into_iter().map(|r| r.2).collect();
    delivered.sort();
    assert_eq!(delivered, keys);
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handles_shutdown_queues_its_writes_and_leaves_the_breaker_open() {
    let dir = Dir::new("handle-shutdown");
    let hang = Script::new(vec![Step::Hang]);
    let b = breaker(config("ob-handle-shutdown", &dir, &SLOW), &hang);
    let handle = b.stop_token();
    let call = {
        let b = b.clone();
        let mut call = Call::new(
            b.prepare("http://127.0.0.1:9/api/sigils", Some("POST"), &[], None)
                .unwrap(),
        );
        b.make_durable(&mut call, None).unwrap();
        call.stop = Some(handle.clone());
        let permit = b.admit().unwrap();
        tokio::spawn(b.execute(permit, call))
    };
    eventually(10, "the write in flight", || async { hang.count() == 1 }).await;
    handle.cancel();
    let CallOutcome::Queued(q) = outcomes(vec![call]).await.remove(0) else {
        panic!("queued")
    };
    assert_eq!(q.code, Code::Shutdown);
    // The breaker (its other handles) is still open, and so is its store.
    let ob = b.outbox().unwrap();
    assert!(!ob.is_closed());
    assert_eq!(ob.stats(b.wall_ms()).entries, 1);
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_outbox_cannot_take_at_shutdown_is_reported_not_dropped() {
    let dir = Dir::new("shutdown-full");
    let hang = Script::new(vec![Step::Hang]);
    let mut opts = SLOW.to_vec();
    opts.push(("outboxMaxEntries", RawValue::Number(1.0)));
    let b = breaker(config("ob-shutdown-full", &dir, &opts), &hang);
    let keys = ["a".to_string(), "b".to_string()];
    let calls = in_flight(&b, &hang, &keys).await;
    b.close();
    let out = outcomes(calls).await;
    let queued = out
        .iter()
        .filter(|o| matches!(o, CallOutcome::Queued(_)))
        .count();
    assert_eq!(queued, 1, "room for one: {out:?}");
    let reported: Vec<&String> = out
        .iter()
        .filter_map(|o| match o {
            CallOutcome::Rejected(r) if r.code == Code::Shutdown => Some(&r.message),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1, "{out:?}");
    assert!(
        reported[0].contains("could not be queued (the outbox is full)")
            && reported[0].contains("outcome is unknown"),
        "{}",
        reported[0]
    );
}
