//! How a fire() ends: a response, a fallback (resolves), or a rejection (rejects).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::error::{CallError, Code};
use crate::observer::FallbackSource;

#[derive(Clone, Debug)]
pub struct Success {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body is JSON (validated); otherwise it is text.
    pub json: bool,
}

#[derive(Clone, Debug)]
pub struct Fallback {
    pub code: Code,
    pub source: FallbackSource,
    /// Cached body for `source == Cache`.
    pub body: Option<Bytes>,
    pub json: bool,
    pub age: Option<Duration>,
    /// DNAStore's Retry-After on the last failed attempt (429/503), capped by retryAfterMaxMs.
    pub retry_after: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct Rejection {
    pub code: Code,
    pub message: String,
    /// For EHTTP: the upstream's status and body.
    pub status: Option<u16>,
    pub body: Option<Bytes>,
}

impl From<CallError> for Rejection {
    fn from(e: CallError) -> Self {
        Self {
            code: e.code,
            message: e.message,
            status: None,
            body: None,
        }
    }
}

/// A durable write that could not be delivered now, stored in the outbox.
#[derive(Clone, Debug)]
pub struct QueuedWrite {
    pub id: String,
    pub idempotency_key: String,
    /// Why it was not delivered now (the fallback's code).
    pub code: Code,
}

#[derive(Clone, Debug)]
pub enum CallOutcome {
    Ok(Success),
    Fallback(Fallback),
    Rejected(Rejection),
    Queued(QueuedWrite),
}

impl CallOutcome {
    pub fn is_fallback(&self) -> bool {
        matches!(self, CallOutcome::Fallback(_))
    }
}
