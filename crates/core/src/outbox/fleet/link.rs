//! The fleet outbox's one connection to Redis: a [`RedisLink`](crate::redis::RedisLink)
//! (opened on first use, reopened after it breaks, failing fast during a backoff after a
//! failed open, so a dead Redis costs an enqueue nothing but its plain fallback).

use redis::FromRedisValue;

use super::Fleet;

impl Fleet {
    /// Closes the connection for good (the breaker has closed and handed its writes back).
    pub fn disconnect(&self) {
        self.link.disconnect();
    }

    pub(super) async fn run<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        self.link.run(inv).await
    }

    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        self.link.query(cmd).await
    }

    pub(super) async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T, String> {
        self.link.pipe(p).await
    }
}
