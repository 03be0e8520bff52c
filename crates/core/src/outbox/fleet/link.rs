//! The fleet's one connection to Redis: opened on first use, shared by every operation
//! (redis-rs multiplexes them), dropped when an error says it is broken and opened again
//! by the next operation; after a failed open, operations fail at once (with the reason)
//! until a backoff of 100 ms doubling to 2 s has passed, so a dead Redis costs an enqueue
//! nothing but its plain fallback. Every message names the URL without credentials.

use std::time::Duration;

use redis::FromRedisValue;
use tokio::time::Instant;

use super::Fleet;
use crate::outbox::SpillReason;
use crate::redis::{is_broken, RedisConnection};

const CLOSED: &str = "outbox Redis: the breaker is shut down";

/// A failed operation: the message (the URL without credentials) and what kind of failure.
#[derive(Clone, Debug)]
pub struct Failure {
    pub message: String,
    pub reason: SpillReason,
}

/// What kind of failure `e` is: no reply in time, no working connection, or an answer.
fn reason_of(e: &redis::RedisError) -> SpillReason {
    if e.is_timeout() {
        SpillReason::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        SpillReason::Unreachable
    } else {
        SpillReason::Error
    }
}

impl Fleet {
    pub(super) async fn conn(&self) -> Result<RedisConnection, String> {
        {
            let l = self.link.lock();
            if let Some(c) = l.conn.clone() {
                return Ok(c);
            }
            if l.closed {
                return Err(CLOSED.into());
            }
        }
        let _gate = self
            .connecting
            .acquire()
            .await
            .map_err(|_| "closed".to_string())?;
        {
            let l = self.link.lock();
            if let Some(c) = l.conn.clone() {
                return Ok(c);
            }
            if l.closed {
                return Err(CLOSED.into());
            }
            if l.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(l.last_error.clone());
            }
        }
        let opened = self.client.connect().await;
        let mut l = self.link.lock();
        match opened {
            Ok(_) if l.closed => Err(CLOSED.into()),
            Ok(c) => {
                l.conn = Some(c.clone());
                l.retry_at = None;
                l.backoff = Duration::from_millis(100);
                Ok(c)
            }
            Err(e) => {
                let e = format!("outbox Redis {}: {e}", self.client.spec().redacted());
                l.retry_at = Some(Instant::now() + l.backoff);
                l.backoff = (l.backoff * 2).min(Duration::from_secs(2));
                l.last_error = e.clone();
                Err(e)
            }
        }
    }

    /// False while operations would fail at once: after a failed connect, until its
    /// backoff has passed (or once closed).
    pub fn may_connect(&self) -> bool {
        let l = self.link.lock();
        l.conn.is_some() || (!l.closed && l.retry_at.is_none_or(|at| Instant::now() >= at))
    }

    /// Closes the connection for good (the breaker has closed and handed its writes back).
    pub fn disconnect(&self) {
        let mut l = self.link.lock();
        l.closed = true;
        l.conn = None;
    }

    /// Describes `e` without credentials; a broken connection is dropped (reopened next time).
    pub(super) fn failed(&self, e: &redis::RedisError) -> String {
        if is_broken(e) {
            self.link.lock().conn = None;
        }
        format!(
            "outbox Redis {}: {}",
            self.client.spec().redacted(),
            self.client.describe(e)
        )
    }

    pub(super) async fn run<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        self.run_classified(inv).await.map_err(|f| f.message)
    }

    /// [`Fleet::run`], saying why it failed (for the spill's reason).
    pub(super) async fn run_classified<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Failure> {
        let mut c = self.conn().await.map_err(|message| Failure {
            message,
            reason: SpillReason::Unreachable,
        })?;
        inv.invoke_async(&mut c).await.map_err(|e| Failure {
            reason: reason_of(&e),
            message: self.failed(&e),
        })
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self.conn().await?;
        cmd.query_async(&mut c).await.map_err(|e| self.failed(&e))
    }

    pub(super) async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T, String> {
        let mut c = self.conn().await?;
        p.query_async(&mut c).await.map_err(|e| self.failed(&e))
    }
}
