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

pub use circuit::{BulkheadStats, Circuit, CircuitConfig, Permit, Stats, Verdict};
pub use config::{Config, ConfigError, RawOptions, RawValue};
pub use error::{CallError, Code, FailureKind};
pub use observer::{
    CallKind, Event, EventKind, FallbackSource, Observer, StateKind, Transition, TransitionReason,
};
pub mod breaker;
pub mod call_trace;
pub mod http;
pub mod limit;
pub mod lkg;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod own_runtime;
pub mod pem;
pub mod redis;
pub mod registry;
pub mod request;
pub mod retry;
#[cfg(test)]
mod test_support;
pub mod text;
pub mod tls;

pub use breaker::{Breaker, Call, Deps, Durable};
pub use call_trace::{CallTrace, RetryNote, TraceSummary};
pub use outcome::{CallOutcome, Fallback, QueuedWrite, Rejection, Success};
/// Cancellation of a call (an AbortSignal) or of a handle's calls (shutdown).
pub use tokio_util::sync::CancellationToken;
