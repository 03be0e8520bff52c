//! The shared LKG against real processes: redis-server, Sentinels, a TLS server with a CA
//! the test makes, an ACL user, and TCP servers that hang or refuse. Real time, bounded:
//! every wait polls with a deadline. Each test starts and stops its own processes
//! (`crate::redis::test_servers`) and skips, saying why, without redis-server on the
//! PATH, except under CI=true, where that fails.

mod acl;
mod hang;
mod sentinel;
mod single;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{RedisLkg, READ_TIMEOUT};
use crate::breaker::Transport;
use crate::breaker::{Breaker, Call, Deps};
use crate::config::{Config, RawOptions, RawValue};
use crate::config::{RedisOptions, RedisSpec};
use crate::lkg::LkgMetrics;
use crate::lkg::{CacheKey, Entry};
use crate::metrics::Series;
use crate::outcome::CallOutcome;
use crate::redis::RedisClient;
use crate::rng::SplitMix64;
use crate::test_support::{eventually, Script};

/// The health transitions a client reported: (up, reason).
type Seen = Arc<Mutex<Vec<(bool, Option<String>)>>>;

fn ups(seen: &Seen) -> Vec<bool> {
    seen.lock().iter().map(|(up, _)| *up).collect()
}

/// The reason of the first down transition.
fn down_reason(seen: &Seen) -> String {
    seen.lock()
        .iter()
        .find_map(|(up, r)| (!up).then(|| r.clone().unwrap_or_default()))
        .unwrap_or_default()
}

/// A client and the health transitions it reported.
fn client_with(url: &str, name: &str, opts: RedisOptions) -> (RedisLkg, Seen, Arc<LkgMetrics>) {
    let seen: Seen = Arc::new(Mutex::new(vec![]));
    let s = seen.clone();
    let m = Arc::new(LkgMetrics::new(&Series::new(name)));
    let redis = RedisClient::new(RedisSpec::parse(url).unwrap(), opts).unwrap();
    let c = RedisLkg::new(
        redis,
        name,
        Duration::from_secs(60),
        m.clone(),
        Box::new(move |up, reason| s.lock().push((up, reason.map(str::to_string)))),
        None,
    );
    (c, seen, m)
}

fn client(url: &str, name: &str) -> (RedisLkg, Seen, Arc<LkgMetrics>) {
    client_with(url, name, RedisOptions::default())
}

fn entry(body: &'static str) -> Entry {
    Entry {
        body: Bytes::from_static(body.as_bytes()),
        json: true,
        stored_at_ms: 42,
        vary: None,
        mac: Some([9; 32]),
    }
}

const K: CacheKey = CacheKey([0xab; 32]);

/// Writes `e` under `K` and waits until it reads back.
async fn round_trip(c: &RedisLkg, e: Entry) {
    c.put(&K, &e);
    eventually(5, "the write reads back", || async {
        c.get(&K, READ_TIMEOUT).await.as_ref() == Some(&e)
    })
    .await;
}

// Breakers with the same name and Redis stand in for replicas.

fn replica(
    name: &str,
    redis: &str,
    script: &Arc<Script>,
    extra: &[(&str, RawValue)],
) -> Arc<Breaker> {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("redisUrl", RawValue::String(redis.into()))
        .set("signingSecret", RawValue::String("k".into()))
        .set("maxAttempts", RawValue::Number(1.0));
    for (k, v) in extra {
        o.insert(k, v.clone());
    }
    let cfg = Config::resolve(&o, &|_| None).unwrap();
    let deps = Deps {
        rng: Arc::new(SplitMix64::seeded(1)),
        wall_origin: std::time::SystemTime::now(),
        runtime: None,
    };
    Breaker::with_transport(cfg, deps, Transport::Script(script.clone()))
        .expect("no outbox to open")
}

async fn get(b: &Arc<Breaker>, deadline: Option<Duration>) -> CallOutcome {
    let req = b
        .prepare("http://127.0.0.1:9/api/sigils", None, &[], None)
        .unwrap();
    let p = b.admit().expect("closed");
    let mut call = Call::new(req);
    call.deadline = deadline;
    b.clone().execute(p, call).await
}
