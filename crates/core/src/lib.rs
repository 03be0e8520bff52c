//! dnastore-core: the circuit breaker, retry policy, last-known-good cache, HTTP client
//! and metrics behind the `dnastore-breaker` Node addon. Plain Rust: no napi here, so
//! `cargo test` covers all behaviour without Node.
#![forbid(unsafe_code)]

pub mod circuit;
pub mod config;
pub mod error;
pub mod guarded;
pub mod observer;
pub mod rng;
pub mod window;

pub use circuit::{BulkheadStats, Circuit, CircuitConfig, HedgeStats, Permit, Stats, Verdict};
pub use config::{Config, ConfigError, RawOptions, RawValue};
pub use error::{CallError, Code, FailureKind};
pub use observer::{
    CallKind, Event, EventKind, FallbackSource, HedgeResult, HedgeSkip, Observer, StateKind,
    Transition, TransitionReason,
};
pub mod breaker;
pub mod call_trace;
pub mod hedge;
pub mod http;
pub mod limit;
pub mod lkg;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod own_runtime;
pub mod redis;
pub mod registry;
pub mod retry;
pub mod route_metrics;
#[cfg(test)]
mod test_support;
pub mod tls;
mod transport;

pub use breaker::{Breaker, Call, Deps, Durable};
pub use call_trace::{CallTrace, RetryNote, TraceSummary};
pub use outcome::{CallOutcome, Fallback, QueuedWrite, Rejection, Success};
/// Cancellation of a call (an AbortSignal) or of a handle's calls (shutdown).
pub use tokio_util::sync::CancellationToken;
