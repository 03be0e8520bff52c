//! One shared connection to Redis for a feature that runs commands now and then (the fleet
//! outbox, the fleet circuit): opened on first use, shared by every operation (redis-rs
//! multiplexes them), dropped when an error says it is broken and opened again by the next
//! operation; after a failed open, operations fail at once (with the reason) until a
//! backoff of 100 ms doubling to 2 s has passed, so a dead Redis costs a caller nothing but
//! its own fallback. Every message names the feature and the URL without credentials.

use std::time::Duration;

use parking_lot::Mutex;
use redis::FromRedisValue;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{is_broken, RedisClient, RedisConnection};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

struct State {
    conn: Option<RedisConnection>,
    /// Set once the owner has closed: the connection is dropped and not opened again.
    closed: bool,
    /// After a failed connect, operations fail at once until then.
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: String,
}

/// A failed operation, its message without credentials either way.
#[derive(Debug)]
pub enum LinkFailure {
    /// No connection could be had (or the link is closed).
    Connect(String),
    /// The command failed on a connection.
    Reply {
        message: String,
        error: redis::RedisError,
    },
}

impl LinkFailure {
    pub fn into_message(self) -> String {
        match self {
            LinkFailure::Connect(m) | LinkFailure::Reply { message: m, .. } => m,
        }
    }
}

/// A reconnecting connection for one feature (`label`: "outbox Redis", "fleet Redis").
pub struct RedisLink {
    client: RedisClient,
    label: &'static str,
    state: Mutex<State>,
    /// One connect at a time; the others wait for its outcome.
    connecting: Semaphore,
}

impl RedisLink {
    /// No I/O: the connection opens on first use.
    pub fn new(client: RedisClient, label: &'static str) -> Self {
        Self {
            client,
            label,
            state: Mutex::new(State {
                conn: None,
                closed: false,
                retry_at: None,
                backoff: BACKOFF_MIN,
                last_error: String::new(),
            }),
            connecting: Semaphore::new(1),
        }
    }

    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    fn closed_message(&self) -> String {
        format!("{}: the breaker is shut down", self.label)
    }

    /// The open connection, or a new one (bounded by the client's connect timeout).
    pub async fn conn(&self) -> Result<RedisConnection, String> {
        {
            let l = self.state.lock();
            if let Some(c) = l.conn.clone() {
                return Ok(c);
            }
            if l.closed {
                return Err(self.closed_message());
            }
        }
        let _gate = self
            .connecting
            .acquire()
            .await
            .map_err(|_| self.closed_message())?;
        {
            let l = self.state.lock();
            if let Some(c) = l.conn.clone() {
                return Ok(c);
            }
            if l.closed {
                return Err(self.closed_message());
            }
            if l.retry_at.is_some_and(|at| Instant::now() < at) {
                return Err(l.last_error.clone());
            }
        }
        let opened = self.client.connect().await;
        let mut l = self.state.lock();
        match opened {
            Ok(_) if l.closed => Err(self.closed_message()),
            Ok(c) => {
                l.conn = Some(c.clone());
                l.retry_at = None;
                l.backoff = BACKOFF_MIN;
                Ok(c)
            }
            Err(e) => {
                let e = format!("{} {}: {e}", self.label, self.client.spec().redacted());
                l.retry_at = Some(Instant::now() + l.backoff);
                l.backoff = (l.backoff * 2).min(BACKOFF_MAX);
                l.last_error = e.clone();
                Err(e)
            }
        }
    }

    /// Whether a connection is open now (no I/O).
    pub fn is_open(&self) -> bool {
        self.state.lock().conn.is_some()
    }

    /// False while operations would fail at once: after a failed connect, until its
    /// backoff has passed (or once closed).
    pub fn may_connect(&self) -> bool {
        let l = self.state.lock();
        l.conn.is_some() || (!l.closed && l.retry_at.is_none_or(|at| Instant::now() >= at))
    }

    /// Drops the connection (the next operation opens a new one, without waiting for the
    /// backoff): what a caller does when a reply was too slow or its subscription broke.
    pub fn reset(&self) {
        self.state.lock().conn = None;
    }

    /// Closes the connection for good (the owner has shut down).
    pub fn disconnect(&self) {
        let mut l = self.state.lock();
        l.closed = true;
        l.conn = None;
    }

    /// Describes `e` without credentials; a broken connection is dropped (reopened next time).
    pub fn failed(&self, e: &redis::RedisError) -> String {
        if is_broken(e) {
            self.state.lock().conn = None;
        }
        format!(
            "{} {}: {}",
            self.label,
            self.client.spec().redacted(),
            self.client.describe(e)
        )
    }

    pub async fn run<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        self.run_detailed(inv)
            .await
            .map_err(LinkFailure::into_message)
    }

    /// [`RedisLink::run`], saying whether no connection could be had or the command failed
    /// (with redis-rs's error, for callers that tell timeouts from refusals).
    pub async fn run_detailed<T: FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<T, LinkFailure> {
        let mut c = self.conn().await.map_err(LinkFailure::Connect)?;
        inv.invoke_async(&mut c)
            .await
            .map_err(|error| LinkFailure::Reply {
                message: self.failed(&error),
                error,
            })
    }

    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self.conn().await?;
        cmd.query_async(&mut c).await.map_err(|e| self.failed(&e))
    }

    pub async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T, String> {
        let mut c = self.conn().await?;
        p.query_async(&mut c).await.map_err(|e| self.failed(&e))
    }
}
