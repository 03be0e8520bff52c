//! Durable calls: which calls are, what makes them ready to be queued, and queueing them
//! when they cannot be delivered now, including when the breaker shuts down under them.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::{Breaker, Call, Durable};
use crate::config::OutboxMode;
use crate::error::{CallError, Code};
use crate::observer::Event;
use crate::outbox::{Hold, Outbox, Refused, SHUTDOWN_QUEUE_TIMEOUT};
use crate::outcome::{CallOutcome, Fallback, QueuedWrite, Rejection};

impl Breaker {
    /// The wait before a queued write is tried again after `attempts` failed deliveries:
    /// decorrelated jitter from retryBaseMs up to outboxRetryMaxMs.
    pub(crate) fn outbox_backoff(&self, attempts: u32) -> Duration {
        let mut d = None;
        for _ in 0..attempts.clamp(1, 32) {
            d = Some(self.outbox_backoff.next(d, self.deps.rng.as_ref()));
        }
        d.unwrap_or_default()
    }

    /// Whether a call is durable: `requested` is the caller's `init.durable`. With
    /// `outbox: on` writes opt in; with `all` every write is durable unless it opts out.
    pub fn durable_requested(
        &self,
        requested: Option<bool>,
        method: &Method,
    ) -> Result<bool, CallError> {
        let mode = self.config.outbox.mode;
        match (requested, mode) {
            (Some(false), _) | (None, OutboxMode::Off) | (None, OutboxMode::On) => Ok(false),
            (None, OutboxMode::All) => Ok(crate::outbox::method_qualifies(method)),
            (Some(true), OutboxMode::Off) => Err(CallError::invalid(
                "init.durable needs the outbox: set the outbox option (or DNASTORE_OUTBOX) to on or all",
            )),
            (Some(true), _) if !crate::outbox::method_qualifies(method) => Err(CallError::invalid(format!(
                "init.durable: a {method} cannot be queued (only POST, PUT, PATCH and DELETE: a read needs its answer now)"
            ))),
            (Some(true), _) => Ok(true),
        }
    }

    /// Makes `call` durable: an Idempotency-Key (the caller's or a new one) that every
    /// attempt, live or delivered later, carries; and its ordering key (`ordering_key`, or
    /// the URL for PUT/PATCH/DELETE).
    pub fn make_durable(
        &self,
        call: &mut Call,
        ordering_key: Option<String>,
    ) -> Result<(), CallError> {
        if !call.req.url.username().is_empty() || call.req.url.password().is_some() {
            return Err(CallError::invalid(
                "a durable write cannot carry credentials in its URL (they would be stored); send them in a header named in outboxHeaders",
            ));
        }
        Outbox::prepare(&mut call.req)?;
        let ordering_key = ordering_key.or_else(|| crate::outbox::default_ordering_key(&call.req));
        call.durable = Some(Durable { ordering_key });
        Ok(())
    }

    /// For a durable call: keeps the outbox's store open until the call has ended, so that
    /// a shutdown meanwhile still finds it open to queue the write (`outbox/shutdown.rs`).
    pub(super) fn hold_outbox(&self, call: &Call) -> Option<Hold> {
        call.durable.as_ref()?;
        self.outbox.as_ref().map(Outbox::hold)
    }

    /// Stores `call`'s write; `code` says why it was not delivered now.
    async fn store(&self, call: &Call, code: Code) -> Result<QueuedWrite, Refused> {
        let (Some(ob), Some(d)) = (&self.outbox, &call.durable) else {
            return Err(Refused::Closed);
        };
        // Boxed: the outbox's future is ~5 KB, and inline it made every call's future that
        // large, copied whole wherever a call future is built or moved (bench/README.md,
        // "Concurrency 50"). Only calls that reach the outbox pay the allocation.
        let q = Box::pin(ob.enqueue(&call.req, d.ordering_key.clone(), self.wall_ms())).await?;
        self.emit(&Event::Queued { id: &q.id, code });
        Ok(QueuedWrite {
            id: q.id,
            idempotency_key: q.idempotency_key,
            code,
        })
    }

    /// Stores a durable call that could not be delivered (`f` says why): `Queued`, or the
    /// plain fallback when the outbox is full or failing (never a silent drop).
    pub(super) async fn queue(&self, call: &Call, f: Fallback) -> CallOutcome {
        if call.durable.is_none() {
            return CallOutcome::Fallback(f);
        }
        match self.store(call, f.code).await {
            Ok(q) => CallOutcome::Queued(q),
            Err(_) => CallOutcome::Fallback(f),
        }
    }

    /// A durable call short-circuited by the open circuit: queued (or the plain fallback).
    pub async fn queue_rejected(self: Arc<Self>, call: Call) -> CallOutcome {
        let _hold = self.hold_outbox(&call);
        let f = self.rejected(None);
        self.queue(&call, f).await
    }

    /// A durable call still running when its handle shut down: its outcome is unknown (the
    /// attempt may have reached DNAStore), so its write is queued, with its Idempotency-Key,
    /// and the next process delivers it (`code: ESHUTDOWN`). If the outbox cannot take it
    /// within [`SHUTDOWN_QUEUE_TIMEOUT`], the call rejects with ESHUTDOWN saying so.
    pub(super) async fn queue_at_shutdown(&self, call: &Call) -> CallOutcome {
        if call.durable.is_none() || self.outbox.is_none() {
            return self.shut_down();
        }
        let why =
            match tokio::time::timeout(SHUTDOWN_QUEUE_TIMEOUT, self.store(call, Code::Shutdown))
                .await
            {
                Ok(Ok(q)) => return CallOutcome::Queued(q),
                Ok(Err(Refused::Full)) => "the outbox is full".to_string(),
                Ok(Err(Refused::Store(e))) => e,
                Ok(Err(Refused::OrderingKey(e))) => {
                    format!("{e}; a write with an ordering key is not spilled")
                }
                Ok(Err(Refused::Closed)) => "the outbox is closed".to_string(),
                Err(_) => format!(
                    "the outbox did not take it within {} ms",
                    SHUTDOWN_QUEUE_TIMEOUT.as_millis()
                ),
            };
        CallOutcome::Rejected(Rejection::from(CallError::new(
            Code::Shutdown,
            format!(
                "breaker {:?} was shut down with this durable write in flight and it could not \
                 be queued ({why}): its outcome is unknown; send it again with the same \
                 Idempotency-Key",
                self.name()
            ),
        )))
    }

    /// Whether `call` is a durable write whose ordering key still has a write queued.
    pub(super) async fn behind_queued(&self, call: &Call) -> bool {
        match (&self.outbox, &call.durable) {
            (
                Some(ob),
                Some(Durable {
                    ordering_key: Some(k),
                }),
                // Boxed for the reason `store` boxes its outbox future.
            ) => Box::pin(ob.has_queued(k)).await,
            _ => false,
        }
    }
}
