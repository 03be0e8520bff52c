//! `NativeOutboxAdmin`: an outbox reached without a breaker, for the operator CLI's
//! `outbox` command (stats, list, dead letters, retry, discard, and the signature check
//! before a drain). The core owns all of it (`outbox/admin.rs`); this file converts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dnastore_core::outbox::admin::{OutboxAdmin, Revealed};
use dnastore_core::{Code, Config};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::bridge::{self, settle_with, Run};
use crate::convert;
use crate::outbox::{dead_letter, entry, failed, limit, OutboxDeadLetter, OutboxEntry};
use crate::throw::throw;

/// The store's counts as an operator reads them.
#[napi(object)]
pub struct OutboxAdminStats {
    pub entries: f64,
    pub bytes: f64,
    pub dead_letters: f64,
    /// Age of the oldest queued write, ms; null when empty.
    pub oldest_age_ms: Option<f64>,
    /// Fleet-wide writes being attempted now; null for an embedded store (only its
    /// process knows).
    pub in_flight: Option<f64>,
}

/// A stored write's headers (values other than content-type and idempotency-key are
/// `***`) and body: only when asked for.
#[napi(object)]
pub struct OutboxWriteContent {
    /// `[name, value]` pairs.
    pub headers: Vec<Vec<String>>,
    pub body: Buffer,
}

#[napi(object)]
pub struct OutboxAdminEntry {
    pub entry: OutboxEntry,
    pub content: Option<OutboxWriteContent>,
}

#[napi(object)]
pub struct OutboxAdminDeadLetter {
    pub dead_letter: OutboxDeadLetter,
    pub content: Option<OutboxWriteContent>,
}

fn content(r: Option<Revealed>) -> Option<OutboxWriteContent> {
    r.map(|r| OutboxWriteContent {
        headers: r.headers.into_iter().map(|(k, v)| vec![k, v]).collect(),
        body: Buffer::from(r.body.to_vec()),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[napi]
pub struct NativeOutboxAdmin {
    inner: Arc<OutboxAdmin>,
}

#[napi]
impl NativeOutboxAdmin {
    /// The outbox `options` and `envVars` describe, resolved and validated as
    /// `createBreaker` does (ECONFIG otherwise): `outboxRedisUrl`, else `outboxDir`, for
    /// the breaker `name`. Opens nothing yet.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: BreakerOptions | undefined | null, envVars: Record<string, string> | undefined | null"
    )]
    pub fn new(
        env: Env,
        options: Option<Object>,
        env_vars: Option<HashMap<String, String>>,
    ) -> Result<Self> {
        let raw = convert::raw_options(options.as_ref())?;
        let cfg = Config::resolve(&raw, &convert::env_lookup(env_vars))
            .map_err(|e| throw(&env, Code::Config, &e.message))?;
        let inner = OutboxAdmin::new(&cfg).map_err(|e| throw(&env, Code::Config, &e.0))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The breaker's name, as resolved.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// 'sqlite' | 'redis'
    #[napi(getter)]
    pub fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// The store's file, or its Redis URL without credentials.
    #[napi(getter)]
    pub fn location(&self) -> String {
        self.inner.location()
    }

    #[napi(ts_return_type = "Promise<OutboxAdminStats>")]
    pub fn stats<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let a = self.inner.clone();
        let read = async move {
            let s = a.stats(now_ms()).await.map_err(failed)?;
            Ok(OutboxAdminStats {
                entries: s.entries as f64,
                bytes: s.bytes as f64,
                dead_letters: s.dead_letters as f64,
                oldest_age_ms: s.oldest_age.map(|d| d.as_millis() as f64),
                in_flight: s.in_flight.map(|n| n as f64),
            })
        };
        bridge::promise(env, async move { settle_with(read.await) }, Run::Io)
    }

    /// Queued writes, oldest first; their headers and bodies only with `bodies`.
    #[napi(ts_return_type = "Promise<Array<OutboxAdminEntry>>")]
    pub fn list<'env>(
        &self,
        env: &'env Env,
        limit_: Option<u32>,
        bodies: Option<bool>,
    ) -> Result<Unknown<'env>> {
        let (a, n, bodies) = (self.inner.clone(), limit(limit_), bodies.unwrap_or(false));
        let read = async move {
            let l = a.list(n, bodies).await.map_err(failed)?;
            Ok(l.into_iter()
                .map(|(l, r)| OutboxAdminEntry {
                    entry: entry(l),
                    content: content(r),
                })
                .collect::<Vec<_>>())
        };
        bridge::promise(env, async move { settle_with(read.await) }, Run::Io)
    }

    #[napi(ts_return_type = "Promise<Array<OutboxAdminDeadLetter>>")]
    pub fn dead_letters<'env>(
        &self,
        env: &'env Env,
        limit_: Option<u32>,
        bodies: Option<bool>,
    ) -> Result<Unknown<'env>> {
        let (a, n, bodies) = (self.inner.clone(), limit(limit_), bodies.unwrap_or(false));
        let read = async move {
            let d = a.dead_letters(n, bodies).await.map_err(failed)?;
            Ok(d.into_iter()
                .map(|(d, r)| OutboxAdminDeadLetter {
                    dead_letter: dead_letter(d),
                    content: content(r),
                })
                .collect::<Vec<_>>())
        };
        bridge::promise(env, async move { settle_with(read.await) }, Run::Io)
    }

    /// A dead letter back in the queue: resolves false if there is none with `id`; rejects
    /// when the store cannot be changed (held by a running process, Redis down), saying why.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn retry<'env>(&self, env: &'env Env, id: String) -> Result<Unknown<'env>> {
        let a = self.inner.clone();
        let done = async move { a.retry(&id, now_ms()).await.map_err(failed) };
        bridge::promise(env, async move { settle_with(done.await) }, Run::Io)
    }

    /// Removes a queued write or a dead letter for good: resolves false if there is none
    /// with `id`; rejects as `retry` does.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn discard<'env>(&self, env: &'env Env, id: String) -> Result<Unknown<'env>> {
        let a = self.inner.clone();
        let done = async move { a.discard(&id).await.map_err(failed) };
        bridge::promise(env, async move { settle_with(done.await) }, Run::Io)
    }

    /// Why the oldest queued writes would be dead-lettered as tampered if delivered with
    /// this configuration's signing secret; null when they verify (or there is no secret).
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn unverified<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        let a = self.inner.clone();
        let done = async move { a.unverified().await.map_err(failed) };
        bridge::promise(env, async move { settle_with(done.await) }, Run::Io)
    }

    /// Releases the Redis connection.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}
