//! dnastore-core: the circuit breaker, retry policy, last-known-good cache, HTTP client
//! and metrics behind the `dnastore-breaker` Node addon. Plain Rust: no napi here, so
//! `cargo test` covers all behaviour without Node.
//!
//! The top-level modules import one way (`scripts/module-cycles.js crates/core/src`, run by
//! `npm test`, fails on any cycle), in layers, bottom up:
//!
//! - **Foundations** import no feature: `error`, `text`, `pem`, `rng`, `window`,
//!   `own_runtime`, `call_trace`, `config` (plain data and the one validated table),
//!   `request`, `observer` (the event stream and its label enums), `outcome`, `metrics`
//!   (the families, a breaker's series, the event-counting observer); and `redis`, the
//!   Redis client plumbing that the features keeping state in Redis share.
//! - **Features** import foundations only, never a sibling: `circuit`, `retry`, `limit`,
//!   `http`, `tls`, `lkg`, `outbox`, `hedge`, `fleet` (the circuit shared by a fleet through
//!   Redis: it speaks to its breaker through a trait, never to the circuit).
//! - **The composition root**, `breaker`: the one module that joins features (the HTTP
//!   clients from the TLS material, the metric handles, the outbox's delivery loop).
//! - **On top**: `guarded` (the opossum class's circuit, with a breaker's series) and
//!   `registry` (the process's breakers by name).
#![forbid(unsafe_code)]

// Foundations.
pub mod call_trace;
pub mod config;
pub mod error;
pub mod metrics;
pub mod observer;
pub mod outcome;
pub mod own_runtime;
pub mod pem;
pub mod redis;
pub mod request;
pub mod rng;
pub mod text;
pub mod window;

// Features.
pub mod circuit;
pub mod fleet;
pub mod hedge;
pub mod http;
pub mod limit;
pub mod lkg;
pub mod outbox;
pub mod retry;
pub mod tls;

// The composition root, and what sits on it.
pub mod breaker;
pub mod guarded;
pub mod registry;

#[cfg(test)]
mod test_support;

pub use breaker::{Breaker, Call, Deps, Durable};
pub use call_trace::{CallTrace, RetryNote, TraceSummary};
pub use circuit::{BulkheadStats, Circuit, CircuitConfig, HedgeStats, Permit, Stats, Verdict};
pub use config::{Config, ConfigError, RawOptions, RawValue};
pub use error::{CallError, Code, FailureKind};
pub use observer::{
    CallKind, Event, EventKind, FallbackSource, FleetEvent, FleetNote, FleetWhy, HedgeResult,
    HedgeSkip, Observer, StateKind, Transition, TransitionReason,
};
pub use outcome::{CallOutcome, Fallback, QueuedWrite, Rejection, Success};
/// Cancellation of a call (an AbortSignal) or of a handle's calls (shutdown).
pub use tokio_util::sync::CancellationToken;
