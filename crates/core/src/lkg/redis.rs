//! Last-known-good entries shared by many replicas through Redis, so a freshly started
//! replica can serve what another one cached before an outage.
//!
//! Redis never sits on the request path. Writes are queued (bounded; a full queue drops
//! the write and counts an error) to one background task that owns the connection
//! (`task.rs`), spawned on the caller's tokio runtime at first use (breakers are built
//! outside any runtime). Reads happen only on a local miss while a fallback is produced,
//! bounded by [`READ_TIMEOUT`] and the call's remaining deadline. While Redis is known to
//! be down reads return at once; the task reconnects with backoff and reports each health
//! transition (down, back) exactly once. [`RedisLkg::close`] stops the task for good.
//!
//! The transport is redis-rs through [`crate::redis`]: one node, Sentinel or Cluster, TLS.
//! A value read back is only a candidate: the caller passes it through
//! [`LkgCache::accept_remote`](super::LkgCache::accept_remote), which checks the HMAC and
//! maxStale. A value this version cannot decode counts as tampered.

mod codec;
mod task;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

pub use codec::{decode, encode};

use super::{CacheKey, Entry};
use super::{LkgMetrics, Rejected};
use crate::redis::RedisClient;

/// Longest a fallback waits for Redis on a local miss (the call's remaining deadline may cut it shorter).
pub const READ_TIMEOUT: Duration = Duration::from_millis(250);
/// Operations waiting for the connection task; beyond it writes are dropped (and counted).
const QUEUE: usize = 1024;

/// Called with `(false, Some(reason))` when Redis becomes unreachable (or, in Cluster mode,
/// some master does) and `(true, None)` when it is back. The reason never holds credentials.
pub type HealthHook = Box<dyn Fn(bool, Option<&str>) + Send + Sync>;

/// Health as the task last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Health {
    Unknown = 0,
    Up = 1,
    /// Cluster only: some master fails, the others serve their slots. Reported as down,
    /// but reads still go to Redis.
    Degraded = 2,
    /// No connection: reads and writes fail at once.
    Down = 3,
}

enum Op {
    Set {
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    },
    /// The reply is the value (`None`: no such key); a dropped sender means the read failed.
    Get {
        key: String,
        reply: oneshot::Sender<Option<Bytes>>,
    },
}

struct Shared {
    metrics: Arc<LkgMetrics>,
    health: AtomicU8,
    on_health: HealthHook,
    cancel: CancellationToken,
}

impl Shared {
    fn error(&self) {
        self.metrics.redis_errors.inc();
    }

    fn health(&self) -> Health {
        match self.health.load(Ordering::Acquire) {
            1 => Health::Up,
            2 => Health::Degraded,
            3 => Health::Down,
            _ => Health::Unknown,
        }
    }

    /// Records the task's view and reports a change between up and not up once.
    fn set_health(&self, h: Health, reason: Option<&str>) {
        let old = self.health.swap(h as u8, Ordering::AcqRel);
        let was_down = old == Health::Degraded as u8 || old == Health::Down as u8;
        match h {
            Health::Up if was_down => (self.on_health)(true, None),
            Health::Degraded | Health::Down if !was_down => (self.on_health)(false, reason),
            _ => {}
        }
    }

    /// An operation that will not reach Redis. A read whose caller already gave up was
    /// counted by the caller.
    fn fail(&self, op: Op) {
        match op {
            Op::Get { reply, .. } if reply.is_closed() => {}
            _ => self.error(),
        }
    }
}

/// The Redis side of one breaker's last-known-good cache.
pub struct RedisLkg {
    shared: Arc<Shared>,
    prefix: String,
    ttl_ms: u64,
    /// Taken by the task when it is spawned.
    client: parking_lot::Mutex<Option<RedisClient>>,
    tx: OnceLock<mpsc::Sender<Op>>,
    /// Where the connection task runs: the breaker's background runtime. Never the runtime
    /// of the call that happens to use the cache first: that may be a runtime that only
    /// runs while its own calls are in flight (the binding's JS-thread runtime), and the
    /// task's reconnects and timers would stall there.
    runtime: Option<tokio::runtime::Handle>,
}

impl RedisLkg {
    /// Keys are `dnastore:lkg:<breaker>:<cache key hex>`; values expire after `ttl` (maxStale).
    pub fn new(
        client: RedisClient,
        breaker: &str,
        ttl: Duration,
        metrics: Arc<LkgMetrics>,
        on_health: HealthHook,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                health: AtomicU8::new(Health::Unknown as u8),
                on_health,
                cancel: CancellationToken::new(),
            }),
            prefix: format!("dnastore:lkg:{breaker}:"),
            ttl_ms: ttl.as_millis().max(1) as u64,
            client: parking_lot::Mutex::new(Some(client)),
            tx: OnceLock::new(),
            runtime,
        }
    }

    pub fn key(&self, k: &CacheKey) -> String {
        format!("{}{}", self.prefix, k.hex())
    }

    /// True while there is no connection (after a failed connect, until one succeeds).
    pub fn is_down(&self) -> bool {
        self.shared.health() == Health::Down
    }

    /// Stops the background task for good: its connection is dropped, no reconnect is
    /// attempted, queued writes are discarded. Afterwards `put` and `get` return at once
    /// and do nothing. Idempotent; also done on drop.
    pub fn close(&self) {
        self.shared.cancel.cancel();
        self.client.lock().take();
    }

    pub fn is_closed(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// The queue to the connection task, spawned at first use on the background runtime
    /// (the current one when none was given).
    fn sender(&self) -> Option<&mpsc::Sender<Op>> {
        if let Some(tx) = self.tx.get() {
            return Some(tx);
        }
        let handle = self
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())?;
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            // None once closed: the receiver is dropped with nobody to serve it.
            if let Some(client) = self.client.lock().take() {
                handle.spawn(task::run(self.shared.clone(), client, rx));
            }
            tx
        });
        Some(tx)
    }

    /// Queues a write; never waits.
    pub fn put(&self, k: &CacheKey, e: &Entry) {
        if self.is_closed() {
            return;
        }
        let op = Op::Set {
            key: self.key(k),
            value: encode(e),
            ttl_ms: self.ttl_ms,
        };
        if self.sender().is_none_or(|tx| tx.try_send(op).is_err()) {
            self.shared.error();
        }
    }

    /// The entry stored under `k`, if Redis answers within `wait`. Not yet verified.
    pub async fn get(&self, k: &CacheKey, wait: Duration) -> Option<Entry> {
        if wait.is_zero() || self.is_down() || self.is_closed() {
            return None;
        }
        let (reply, rx) = oneshot::channel();
        let op = Op::Get {
            key: self.key(k),
            reply,
        };
        if self.sender().is_none_or(|tx| tx.try_send(op).is_err()) {
            self.shared.error();
            return None;
        }
        match timeout(wait, rx).await {
            Ok(Ok(Some(v))) => {
                let e = decode(&v);
                if e.is_none() {
                    self.shared.metrics.rejected(Rejected::Tampered).inc();
                }
                e
            }
            // No such key, or the task failed the read (and counted it).
            Ok(_) => None,
            Err(_) => {
                self.shared.error();
                None
            }
        }
    }
}

impl Drop for RedisLkg {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

#[cfg(test)]
mod tests;
