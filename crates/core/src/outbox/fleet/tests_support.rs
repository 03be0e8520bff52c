//! What the fleet outbox's tests share (`tests.rs`, `tests_shutdown.rs`, `tests_spill.rs`):
//! replicas (breakers of one name in this process) on a real redis-server, durable writes
//! as the binding makes them, and what the scripted upstream saw.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::breaker::Transport;
use crate::breaker::{Breaker, Call, Deps};
use crate::config::{Config, RawOptions, RawValue};
use crate::outbox::Outbox;
use crate::outcome::CallOutcome;
use crate::redis::test_servers::Server;
use crate::rng::SplitMix64;
use crate::test_support::{eventually, Script, Step};

pub(super) const BASE: &str = "http://127.0.0.1:9";
pub(super) const OK: Step = Step::Reply(201, "application/json", "{}");

pub(super) fn url(s: &Server) -> String {
    format!("redis://127.0.0.1:{}", s.port)
}

/// A replica: a breaker named `name` on the shared outbox at `redis`. Without a spill
/// (`outboxSpill: false`): these tests are about the stream (`tests_spill.rs` is about the
/// spill, with a directory per test).
pub(super) fn replica(
    name: &str,
    redis: &str,
    script: &Arc<Script>,
    extra: &[(&str, f64)],
) -> Arc<Breaker> {
    replica_with(name, redis, script, extra, None)
}

/// [`replica`], spilling into `spill_dir` when given.
pub(super) fn replica_with(
    name: &str,
    redis: &str,
    script: &Arc<Script>,
    extra: &[(&str, f64)],
    spill_dir: Option<&std::path::Path>,
) -> Arc<Breaker> {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("outbox", RawValue::String("on".into()))
        .set("outboxRedisUrl", RawValue::String(redis.into()))
        .set("signingSecret", RawValue::String("k".into()))
        .set("outboxSpill", RawValue::Bool(spill_dir.is_some()));
    if let Some(d) = spill_dir {
        o.insert("outboxDir", RawValue::String(d.display().to_string()));
    }
    for (k, v) in [
        ("maxAttempts", 1.0),
        ("maxFailures", 1.0),
        ("halfOpenMaxCalls", 1.0),
        ("resetTimeout", 100.0),
        ("retryBaseMs", 20.0),
        ("outboxRetryMaxMs", 50.0),
        ("outboxClaimIdleMs", 600.0),
    ]
    .iter()
    .chain(extra)
    {
        o.insert(k, RawValue::Number(*v));
    }
    let cfg = Config::resolve(&o, &|_| None).unwrap();
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(5)),
        wall_origin: SystemTime::now(),
        runtime: None,
    };
    Breaker::with_transport(cfg, deps, Transport::Script(script.clone())).unwrap()
}

pub(super) fn ob(b: &Arc<Breaker>) -> Arc<Outbox> {
    b.outbox().unwrap().clone()
}

/// A durable write, as the binding makes it.
pub(super) async fn write(b: &Arc<Breaker>, method: &str, path: &str, body: &str) -> CallOutcome {
    let req = b
        .prepare(
            &format!("{BASE}{path}"),
            Some(method),
            &[],
            Some(Bytes::from(body.to_string())),
        )
        .unwrap();
    let mut call = Call::new(req);
    b.make_durable(&mut call, None).unwrap();
    match b.admit() {
        Some(p) => b.clone().execute(p, call).await,
        None => b.clone().queue_rejected(call).await,
    }
}

pub(super) fn queued(o: &CallOutcome) -> (String, String) {
    match o {
        CallOutcome::Queued(q) => (q.id.clone(), q.idempotency_key.clone()),
        other => panic!("expected queued, got {other:?}"),
    }
}

/// The Idempotency-Keys the upstream saw, in the order the requests started.
pub(super) fn keys(s: &Script) -> Vec<String> {
    s.seen
        .lock()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// Waits until the shared queue is empty.
pub(super) async fn drained(o: &Arc<Outbox>, secs: u64) {
    eventually(secs, "the shared queue is empty", || async {
        o.queued_now().await == 0
    })
    .await;
}
