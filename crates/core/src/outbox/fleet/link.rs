//! The fleet outbox's one connection to Redis: a [`RedisLink`](crate::redis::RedisLink)
//! (opened on first use, shared by every operation, dropped when an error says it is broken
//! and opened again by the next operation; after a failed open, operations fail at once, with
//! the reason, until a backoff of 100 ms doubling to 2 s has passed, so a dead Redis costs an
//! enqueue nothing but its plain fallback). Every message names the URL without credentials.

use redis::FromRedisValue;

use super::Fleet;
use crate::outbox::SpillReason;
use crate::redis::LinkFailure;

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
    /// False while operations would fail at once: after a failed connect, until its
    /// backoff has passed (or once closed).
    pub fn may_connect(&self) -> bool {
        self.link.may_connect()
    }

    /// Closes the connection for good (the breaker has closed and handed its writes back).
    pub fn disconnect(&self) {
        self.link.disconnect();
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
        self.link.run_detailed(inv).await.map_err(|f| match f {
            LinkFailure::Connect(message) => Failure {
                message,
                reason: SpillReason::Unreachable,
            },
            LinkFailure::Reply { message, error } => Failure {
                reason: reason_of(&error),
                message,
            },
        })
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        self.link.query(cmd).await
    }

    pub(super) async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T, String> {
        self.link.pipe(p).await
    }
}
