//! Last-known-good entries shared by many replicas through Redis, so a freshly started
//! replica can serve what another one cached before an outage.
//!
//! Redis never sits on the request path. Writes are queued (bounded; a full queue drops
//! the write and counts an error) to one background task that owns one pipelined
//! connection, spawned on the caller's tokio runtime at first use (breakers are built
//! outside any runtime). Reads happen only on a local miss while a fallback is produced,
//! bounded by [`READ_TIMEOUT`] and the call's remaining deadline. While Redis is known to
//! be down reads return at once; the task reconnects with backoff and reports each health
//! transition (down, back) exactly once.
//!
//! A value read back is only a candidate: the caller passes it through
//! [`LkgCache::accept_remote`](super::LkgCache::accept_remote), which checks the HMAC and
//! maxStale. A value this version cannot decode counts as tampered.

mod codec;
mod resp;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

pub use codec::{decode, encode, Target};
use resp::Reply;

use super::{CacheKey, Entry};
use crate::metrics::BreakerMetrics;

/// Longest a fallback waits for Redis on a local miss (the call's remaining deadline may cut it shorter).
pub const READ_TIMEOUT: Duration = Duration::from_millis(250);
/// Operations waiting for the connection task; beyond it writes are dropped (and counted).
const QUEUE: usize = 1024;
/// Commands in flight on the connection.
const PIPELINE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A reply (or a write) slower than this means the connection is stuck: drop it, reconnect.
const STALL: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection the server closes while idle is reopened quietly, unless it lived less than this.
const QUIET_RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Called with `false` when Redis becomes unreachable and `true` when it is back.
pub type HealthHook = Box<dyn Fn(bool) + Send + Sync>;

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

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
    target: Target,
    metrics: Arc<BreakerMetrics>,
    health: AtomicU8,
    on_health: HealthHook,
}

impl Shared {
    fn error(&self) {
        self.metrics.lkg_redis_errors.inc();
    }

    fn set_up(&self, up: bool) {
        let old = self
            .health
            .swap(if up { UP } else { DOWN }, Ordering::AcqRel);
        if up && old == DOWN {
            (self.on_health)(true);
        } else if !up && old != DOWN {
            (self.on_health)(false);
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
    tx: OnceLock<mpsc::Sender<Op>>,
    /// Cancelled by [`RedisLkg::close`]: the connection task and its reconnects end.
    stop: CancellationToken,
}

impl RedisLkg {
    /// Keys are `dnastore:lkg:<breaker>:<cache key hex>`; values expire after `ttl` (maxStale).
    pub fn new(
        target: Target,
        breaker: &str,
        ttl: Duration,
        metrics: Arc<BreakerMetrics>,
        on_health: HealthHook,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                target,
                metrics,
                health: AtomicU8::new(UNKNOWN),
                on_health,
            }),
            prefix: format!("dnastore:lkg:{breaker}:"),
            ttl_ms: ttl.as_millis().max(1) as u64,
            tx: OnceLock::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Stops the connection task (and any reconnect) for good; later reads and writes
    /// return at once. Idempotent.
    pub fn close(&self) {
        self.stop.cancel();
    }

    pub fn key(&self, k: &CacheKey) -> String {
        format!("{}{}", self.prefix, k.hex())
    }

    /// True after a failure until the connection is back.
    pub fn is_down(&self) -> bool {
        self.shared.health.load(Ordering::Acquire) == DOWN
    }

    /// The queue to the connection task, spawned on the current runtime at first use.
    fn sender(&self) -> Option<&mpsc::Sender<Op>> {
        if self.stop.is_cancelled() {
            return None;
        }
        if let Some(tx) = self.tx.get() {
            return Some(tx);
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (shared, stop) = (self.shared.clone(), self.stop.clone());
            handle.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = run(shared, rx) => {}
                }
            });
            tx
        }))
    }

    /// Queues a write; never waits.
    pub fn put(&self, k: &CacheKey, e: &Entry) {
        if self.stop.is_cancelled() {
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
        if wait.is_zero() || self.is_down() || self.stop.is_cancelled() {
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
                    self.shared.metrics.lkg_tampered.inc();
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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The connection task: connect, serve until the connection fails, back off, repeat.
/// Ends when the breaker (and with it the queue's sender) is dropped.
async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Op>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if let Ok(Ok((io, buf))) = timeout(CONNECT_TIMEOUT, connect(&shared.target)).await {
            shared.set_up(true);
            backoff = BACKOFF_MIN;
            let opened = Instant::now();
            match serve(&shared, io, buf, &mut rx).await {
                Ended::Closed => return,
                Ended::Idle if opened.elapsed() >= QUIET_RECONNECT_AFTER => continue,
                Ended::Idle | Ended::Failed => {}
            }
        }
        shared.error();
        shared.set_up(false);
        // Calls during the backoff fail at once instead of waiting in the queue.
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                op = rx.recv() => match op {
                    Some(op) => shared.fail(op),
                    None => return,
                },
                _ = sleep_until(until) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(t: &Target) -> Result<(Box<dyn Io>, BytesMut), ()> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(drop)?;
    let _ = tcp.set_nodelay(true);
    let mut io: Box<dyn Io> = if t.tls {
        Box::new(tls(t, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let mut out = Vec::new();
    let mut replies = 0;
    if let Some(pw) = &t.password {
        match &t.username {
            Some(u) => resp::command(&mut out, &[b"AUTH", u.as_bytes(), pw.as_bytes()]),
            None => resp::command(&mut out, &[b"AUTH", pw.as_bytes()]),
        }
        replies += 1;
    }
    if t.db != 0 {
        resp::command(&mut out, &[b"SELECT", t.db.to_string().as_bytes()]);
        replies += 1;
    }
    if replies == 0 {
        // Proves the server speaks RESP and accepts us before we call it up.
        resp::command(&mut out, &[b"PING"]);
        replies = 1;
    }
    io.write_all(&out).await.map_err(drop)?;
    let mut buf = BytesMut::with_capacity(8192);
    while replies > 0 {
        match resp::parse(&buf).map_err(drop)? {
            Some((Reply::Error(_), _)) => return Err(()),
            Some((_, used)) => {
                buf.advance(used);
                replies -= 1;
            }
            None => {
                if io.read_buf(&mut buf).await.map_err(drop)? == 0 {
                    return Err(());
                }
            }
        }
    }
    Ok((io, buf))
}

async fn tls(t: &Target, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ()> {
    use rustls_platform_verifier::ConfigVerifierExt;
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            // The same provider the HTTP client installs; whichever came first wins.
            let _ = rustls::crypto::ring::default_provider().install_default();
            rustls::ClientConfig::with_platform_verifier()
                .ok()
                .map(Arc::new)
        })
        .clone()
        .ok_or(())?;
    let name = rustls::pki_types::ServerName::try_from(t.host.clone()).map_err(drop)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(drop)
}

enum Ended {
    /// The breaker is gone.
    Closed,
    /// The server closed a connection with nothing in flight (e.g. its idle timeout).
    Idle,
    Failed,
}

enum Slot {
    Set,
    Get(oneshot::Sender<Option<Bytes>>),
}

fn push(out: &mut Vec<u8>, op: Op) -> Slot {
    match op {
        Op::Set { key, value, ttl_ms } => {
            resp::command(
                out,
                &[
                    b"SET",
                    key.as_bytes(),
                    &value,
                    b"PX",
                    ttl_ms.to_string().as_bytes(),
                ],
            );
            Slot::Set
        }
        Op::Get { key, reply } => {
            resp::command(out, &[b"GET", key.as_bytes()]);
            Slot::Get(reply)
        }
    }
}

fn deliver(shared: &Shared, slot: Slot, reply: Reply) {
    match (slot, reply) {
        (Slot::Set, Reply::Simple(_)) => {}
        (Slot::Get(tx), Reply::Bulk(v)) => {
            let _ = tx.send(v);
        }
        // An error reply (OOM, READONLY replica, ...) or a reply of the wrong type.
        _ => shared.error(),
    }
}

/// Hands every complete reply in `buf` to its waiting slot, in order.
fn drain(
    shared: &Shared,
    buf: &mut BytesMut,
    pending: &mut VecDeque<(Slot, Instant)>,
) -> Result<(), ()> {
    while let Some((reply, used)) = resp::parse(buf).map_err(drop)? {
        buf.advance(used);
        let (slot, _) = pending.pop_front().ok_or(())?;
        deliver(shared, slot, reply);
    }
    Ok(())
}

/// Pipelines queued operations on one connection until it fails or the queue closes.
async fn serve(
    shared: &Shared,
    io: Box<dyn Io>,
    mut buf: BytesMut,
    rx: &mut mpsc::Receiver<Op>,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut pending: VecDeque<(Slot, Instant)> = VecDeque::new();
    let mut out = Vec::with_capacity(8192);
    let ended = loop {
        let stall = pending.front().map(|(_, sent)| *sent + STALL);
        tokio::select! {
            op = rx.recv(), if pending.len() < PIPELINE => {
                let Some(op) = op else { break Ended::Closed };
                out.clear();
                let now = Instant::now();
                let mut next = Some(op);
                while let Some(op) = next {
                    pending.push_back((push(&mut out, op), now));
                    next = if pending.len() < PIPELINE { rx.try_recv().ok() } else { None };
                }
                if !matches!(timeout(STALL, wr.write_all(&out)).await, Ok(Ok(()))) {
                    break Ended::Failed;
                }
            }
            // read_buf is cancel-safe, and parse consumes only whole replies.
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) if pending.is_empty() => break Ended::Idle,
                Ok(0) | Err(_) => break Ended::Failed,
                Ok(_) => {
                    if drain(shared, &mut buf, &mut pending).is_err() {
                        break Ended::Failed;
                    }
                }
            },
            _ = sleep_until(stall.unwrap_or_else(Instant::now)), if stall.is_some() => break Ended::Failed,
        }
    };
    for (slot, _) in pending {
        match slot {
            Slot::Get(tx) if tx.is_closed() => {}
            _ => shared.error(),
        }
    }
    ended
}

#[cfg(test)]
mod tests;
