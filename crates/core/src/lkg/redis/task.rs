//! The connection task of the shared LKG: connect, serve the queue with pipelined commands
//! until the connection breaks, back off, repeat; stop at once when cancelled.
//!
//! Health comes from what the task sees, not from guesses: a failed connect is `Down`
//! (callers fail fast); a broken connection gets one immediate reconnect (a server
//! restart or an idle timeout need not be reported) before it counts. In Cluster mode the
//! connection routes around a failed master by itself, so a failing command or probe makes
//! the health `Degraded` (reported down, but reads still go to the masters that answer)
//! and the next probe that reaches every master makes it `Up`. A probe (PING) runs after
//! [`PROBE_EVERY`] without a reply, so a server that went away is noticed while idle.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use redis::RedisError;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::{Health, Op, Shared};
use crate::redis::{is_broken, RedisClient, RedisConnection};

/// Commands in flight on the connection.
const PIPELINE: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Short enough that a Sentinel failover or a restarted node is found again within a
/// couple of seconds; a refused connect a second is nothing for Redis.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Idle time after which a PING checks the connection (and, in Cluster, every master).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A connection that breaks after living this long is reopened at once, quietly (a
/// restart, an idle timeout); one that breaks sooner counts as a failure and backs off.
const QUIET_RECONNECT_AFTER: Duration = Duration::from_secs(1);

enum Ended {
    /// Cancelled, or the owner is gone.
    Closed,
    /// The connection is broken; the reason, redacted.
    Broken(String),
}

/// What one command or probe came to.
enum Done {
    Ok {
        probe: bool,
    },
    /// `count`: false for a read whose caller had already given up (it counted the miss).
    Failed {
        error: RedisError,
        count: bool,
        probe: bool,
    },
    /// A Cluster probe: some master failed (the error) but this node answered.
    Partial(RedisError),
}

pub(super) async fn run(shared: Arc<Shared>, client: RedisClient, mut rx: mpsc::Receiver<Op>) {
    let cancel = shared.cancel.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = client.connect() => r,
        };
        match attempt {
            Ok(conn) => {
                shared.set_health(Health::Up, None);
                let opened = Instant::now();
                match serve(&shared, &client, conn, &mut rx).await {
                    Ended::Closed => return,
                    Ended::Broken(_) if opened.elapsed() >= QUIET_RECONNECT_AFTER => {
                        // One immediate reconnect before calling Redis down.
                        backoff = BACKOFF_MIN;
                        continue;
                    }
                    Ended::Broken(reason) => {
                        shared.error();
                        shared.set_health(Health::Down, Some(&reason));
                    }
                }
            }
            Err(reason) => {
                shared.error();
                shared.set_health(Health::Down, Some(&reason));
            }
        }
        // Calls during the backoff fail at once instead of waiting in the queue.
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
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

async fn exec(mut conn: RedisConnection, op: Op) -> Done {
    match op {
        Op::Set { key, value, ttl_ms } => {
            let r: Result<(), RedisError> = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await;
            match r {
                Ok(()) => Done::Ok { probe: false },
                Err(error) => Done::Failed {
                    error,
                    count: true,
                    probe: false,
                },
            }
        }
        Op::Get { key, reply } => {
            let r: Result<Option<Vec<u8>>, RedisError> =
                redis::cmd("GET").arg(key).query_async(&mut conn).await;
            match r {
                Ok(v) => {
                    let _ = reply.send(v.map(Bytes::from));
                    Done::Ok { probe: false }
                }
                Err(error) => Done::Failed {
                    error,
                    count: !reply.is_closed(),
                    probe: false,
                },
            }
        }
    }
}

async fn probe(mut conn: RedisConnection) -> Done {
    match conn.ping_all().await {
        Ok(()) => Done::Ok { probe: true },
        // Some master failed: does any node still answer?
        Err(e) if conn.is_cluster() && conn.ping().await.is_ok() => Done::Partial(e),
        Err(error) => Done::Failed {
            error,
            count: true,
            probe: true,
        },
    }
}

/// Runs queued operations on `conn` (pipelined, at most [`PIPELINE`] in flight) until it
/// breaks or the task is cancelled.
async fn serve(
    shared: &Shared,
    client: &RedisClient,
    conn: RedisConnection,
    rx: &mut mpsc::Receiver<Op>,
) -> Ended {
    let cluster = conn.is_cluster();
    let mut inflight = FuturesUnordered::new();
    let mut last_reply = Instant::now();
    let mut last_probe = Instant::now();
    let mut probing = false;
    let ended = loop {
        // Idle: probe to notice a server that went away. Degraded (Cluster): probe on a
        // schedule, since traffic to the good masters keeps the connection busy.
        let next_probe = match shared.health() {
            Health::Degraded => last_probe + PROBE_EVERY,
            _ => last_reply + PROBE_EVERY,
        };
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break Ended::Closed,
            Some(done) = inflight.next(), if !inflight.is_empty() => match done {
                Done::Ok { probe } => {
                    last_reply = Instant::now();
                    if probe {
                        probing = false;
                        shared.set_health(Health::Up, None);
                    }
                }
                Done::Partial(e) => {
                    probing = false;
                    last_reply = Instant::now();
                    shared.error();
                    shared.set_health(Health::Degraded, Some(&client.describe(&e)));
                }
                Done::Failed { error, count, probe } => {
                    if count {
                        shared.error();
                    }
                    if probe {
                        probing = false;
                    }
                    if !cluster && is_broken(&error) {
                        break Ended::Broken(client.describe(&error));
                    }
                    if cluster && (probe || is_broken(&error)) {
                        if probe {
                            // Not even one node answers: reconnect from the seed nodes.
                            break Ended::Broken(client.describe(&error));
                        }
                        shared.set_health(Health::Degraded, Some(&client.describe(&error)));
                    }
                    // Other error replies (OOM, NOPERM, ...) are counted; the connection is fine.
                }
            },
            op = rx.recv(), if inflight.len() < PIPELINE => match op {
                Some(op) => inflight.push(exec(conn.clone(), op).boxed()),
                None => break Ended::Closed,
            },
            _ = sleep_until(next_probe), if !probing => {
                probing = true;
                last_probe = Instant::now();
                inflight.push(probe(conn.clone()).boxed());
            }
        }
    };
    // Commands still in flight die with the connection; the probe is not an operation.
    let dropped = inflight.len() - usize::from(probing);
    shared.metrics.redis_errors.inc_by(dropped as u64);
    ended
}
