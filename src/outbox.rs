//! `breaker.outbox`: the durable outbox's operations for JS (stats, list, dead letters,
//! retry, discard, drain). The core owns all of it; this file converts.

use std::sync::Arc;

use dnastore_core::outbox::{DeadLetter, Listed, Outbox};
use dnastore_core::Code;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::breaker::NativeBreaker;
use crate::bridge::{self, settle_with, Run};
use crate::throw::throw;

/// `outbox.stats()`. For a fleet outbox (`outboxRedisUrl`) entries, bytes and deadLetters
/// are the shared queue's as read at most a second ago (oldestAgeMs: theirs and this
/// replica's spilled writes'); inFlight, spilled and the counts since start are this
/// process's.
#[napi(object)]
pub struct OutboxStats {
    /// Writes queued now.
    pub entries: f64,
    pub bytes: f64,
    /// Being delivered right now.
    pub in_flight: f64,
    pub dead_letters: f64,
    /// Age of the oldest queued write, ms; null when empty.
    pub oldest_age_ms: Option<f64>,
    /// Since this process started.
    pub enqueued: f64,
    pub delivered: f64,
    pub dead_lettered: f64,
    /// Fleet outbox: writes this replica spilled to its own file (Redis could not take
    /// them) and has not yet forwarded to the stream; 0 otherwise.
    pub spilled: f64,
    pub spilled_bytes: f64,
    /// Fleet outbox: spilled writes forwarded to the stream since start.
    pub forwarded: f64,
}

/// A queued write, as `outbox.list()` shows it (never its body or headers).
#[napi(object)]
pub struct OutboxEntry {
    pub id: String,
    pub method: String,
    /// Without credentials, query or fragment.
    pub url: String,
    pub idempotency_key: String,
    pub ordering_key: Option<String>,
    pub attempts: u32,
    pub created_at: f64,
    /// When it is tried again (ms since the epoch).
    pub next_attempt_at: f64,
    /// The code of its last failed delivery.
    pub last_error: Option<String>,
    pub delivering: bool,
    /// Fleet outbox: in this replica's spill file, waiting for Redis.
    pub spilled: bool,
}

/// A dead letter, as `outbox.deadLetters()` shows it.
#[napi(object)]
pub struct OutboxDeadLetter {
    pub id: String,
    pub method: String,
    pub url: String,
    pub idempotency_key: String,
    /// rejected | expired | tampered | unreadable
    pub reason: String,
    /// DNAStore's status when it refused the write.
    pub status: Option<u32>,
    /// DNAStore's answer when it refused the write.
    pub answer: Option<String>,
    pub attempts: u32,
    pub created_at: f64,
    pub died_at: f64,
}

pub(crate) fn limit(l: Option<u32>) -> usize {
    l.unwrap_or(100).clamp(1, 10_000) as usize
}

/// A store failure rejects the promise (the message names the store, never a secret).
pub(crate) fn failed(e: dnastore_core::outbox::StoreError) -> Error {
    Error::new(Status::GenericFailure, e.0)
}

pub(crate) fn entry(l: Listed) -> OutboxEntry {
    OutboxEntry {
        id: l.id,
        method: l.method,
        url: l.url,
        idempotency_key: l.idempotency_key,
        ordering_key: l.ordering_key,
        attempts: l.attempts,
        created_at: l.created_at_ms as f64,
        next_attempt_at: l.next_at_ms as f64,
        last_error: l.last_error,
        delivering: l.delivering,
        spilled: l.spilled,
    }
}

pub(crate) fn dead_letter(d: DeadLetter) -> OutboxDeadLetter {
    OutboxDeadLetter {
        id: d.id,
        method: d.method,
        url: d.url,
        idempotency_key: d.idempotency_key,
        reason: d.reason,
        status: d.status.map(u32::from),
        answer: d.answer,
        attempts: d.attempts,
        created_at: d.created_at_ms as f64,
        died_at: d.died_at_ms as f64,
    }
}

#[napi]
impl NativeBreaker {
    fn outbox_or_throw(&self, env: &Env) -> Result<Arc<Outbox>> {
        self.core().outbox().cloned().ok_or_else(|| {
            throw(env, Code::Invalid, "this breaker has no outbox: set the outbox option (or DNASTORE_OUTBOX) to on or all")
        })
    }

    /// Whether this breaker has an outbox.
    #[napi(getter)]
    pub fn has_outbox(&self) -> bool {
        self.core().outbox().is_some()
    }

    /// 'off' | 'on' | 'all' (the `outbox` option).
    #[napi(getter)]
    pub fn outbox_mode(&self) -> &'static str {
        match self.core().config().outbox.mode {
            dnastore_core::config::OutboxMode::Off => "off",
            dnastore_core::config::OutboxMode::On => "on",
            dnastore_core::config::OutboxMode::All => "all",
        }
    }

    #[napi]
    pub fn outbox_stats(&self, env: Env) -> Result<OutboxStats> {
        let ob = self.outbox_or_throw(&env)?;
        let s = ob.stats(self.core().wall_now_ms());
        Ok(OutboxStats {
            entries: s.entries as f64,
            bytes: s.bytes as f64,
            in_flight: s.in_flight as f64,
            dead_letters: s.dead_letters as f64,
            oldest_age_ms: s.oldest_age.map(|d| d.as_millis() as f64),
            enqueued: s.enqueued as f64,
            delivered: s.delivered as f64,
            dead_lettered: s.dead_lettered as f64,
            spilled: s.spilled as f64,
            spilled_bytes: s.spilled_bytes as f64,
            forwarded: s.forwarded as f64,
        })
    }

    /// Queued writes, oldest first (the fleet's: the shared queue's).
    #[napi(ts_return_type = "Promise<Array<OutboxEntry>>")]
    pub fn outbox_list<'env>(&self, env: &'env Env, limit_: Option<u32>) -> Result<Unknown<'env>> {
        let ob = self.outbox_or_throw(env)?;
        let n = limit(limit_);
        let listed = async move {
            let l = ob.list(n).await.map_err(failed)?;
            Ok(l.into_iter().map(entry).collect::<Vec<_>>())
        };
        bridge::promise(env, async move { settle_with(listed.await) }, Run::Io)
    }

    #[napi(ts_return_type = "Promise<Array<OutboxDeadLetter>>")]
    pub fn outbox_dead_letters<'env>(
        &self,
        env: &'env Env,
        limit_: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let ob = self.outbox_or_throw(env)?;
        let n = limit(limit_);
        let listed = async move {
            let d = ob.dead_letters(n).await.map_err(failed)?;
            Ok(d.into_iter().map(dead_letter).collect::<Vec<_>>())
        };
        bridge::promise(env, async move { settle_with(listed.await) }, Run::Io)
    }

    /// Puts a dead letter back in the queue; resolves false if there is none with `id`.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn outbox_retry<'env>(&self, env: &'env Env, id: String) -> Result<Unknown<'env>> {
        let ob = self.outbox_or_throw(env)?;
        let now = self.core().wall_now_ms();
        let retried = async move { ob.retry(&id, now).await.unwrap_or(false) };
        bridge::promise(env, async move { settle_with(Ok(retried.await)) }, Run::Io)
    }

    /// Removes a queued write (not while it is being delivered) or a dead letter for good;
    /// resolves false if there is none with `id`.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn outbox_discard<'env>(&self, env: &'env Env, id: String) -> Result<Unknown<'env>> {
        let ob = self.outbox_or_throw(env)?;
        let discarded = async move { ob.discard(&id).await.unwrap_or(false) };
        bridge::promise(
            env,
            async move { settle_with(Ok(discarded.await)) },
            Run::Io,
        )
    }

    /// Resolves when the queue is empty or the circuit is open.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn outbox_drain<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        self.outbox_or_throw(env)?;
        let b = self.core().clone();
        let drained = async move {
            b.drain_outbox().await;
            settle_with(Ok(()))
        };
        bridge::promise(env, drained, Run::Io)
    }
}
