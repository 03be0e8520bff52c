//! napi-rs binding for dnastore-core: thin adapters only. Behaviour lives in the core;
//! this crate converts JS values in and out, and runs the core's futures on its I/O runtime.
#![deny(clippy::all)]
// Every unsafe block states the invariant it relies on (the style guide's rule, enforced).
#![deny(clippy::undocumented_unsafe_blocks)]

mod abort;
mod breaker;
mod completion;
mod convert;
mod dispatch;
mod events;
mod fast;
mod guarded;
mod options;
mod outbox;
mod runtime;
mod throw;

/// Buffers are allocated on the I/O thread and freed on the JS thread (and back); with
/// glibc malloc those cross-thread frees contend on arena locks (~8 % of client CPU in the
/// bench profile). mimalloc's free lists are per thread and cross-thread frees are cheap.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use abort::{abort_call, pending_aborts};
pub use breaker::NativeBreaker;
pub use guarded::NativeCircuit;

use napi_derive::napi;

/// Prometheus text exposition of every breaker in this process.
#[napi]
pub fn metrics() -> String {
    dnastore_core::registry::render_metrics()
}

/// Every metric family the core defines: `[name, type, help]`, present or not yet.
#[napi]
pub fn metric_families() -> Vec<Vec<String>> {
    dnastore_core::metrics::families()
        .into_iter()
        .map(|(n, t, h)| vec![n, t.to_string(), h])
        .collect()
}

/// Every error code fire() and createBreaker() can produce (the core's list): the facade
/// checks membership instead of guessing from a prefix.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    dnastore_core::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .collect()
}

/// Every option name `createBreaker()` accepts (the core's table).
#[napi]
pub fn option_names() -> Vec<&'static str> {
    dnastore_core::config::option_names()
}

/// The content type of `metrics()`.
#[napi]
pub const METRICS_CONTENT_TYPE: &str = dnastore_core::metrics::CONTENT_TYPE;

/// Test hook: panics inside the addon, in a synchronous call (`"sync"`) or inside a future
/// on the runtime (`"async"`), through the same guards fire() uses, to prove a panic
/// surfaces as a JS error with code EINTERNAL instead of crashing the process. Harmless
/// by construction (the panic is always caught), so it needs no gate.
#[napi(
    catch_unwind,
    js_name = "__testPanic",
    ts_return_type = "Promise<string | NativeOutcome>"
)]
pub fn test_panic(
    env: &napi::Env,
    mode: String,
) -> napi::Result<napi::bindgen_prelude::Unknown<'_>> {
    if mode == "sync" {
        panic!("test panic (sync)");
    }
    completion::promise(
        env,
        breaker::guarded(
            async {
                if std::hint::black_box(true) {
                    panic!("test panic (async)");
                }
                dnastore_core::CallOutcome::Rejected(
                    dnastore_core::CallError::invalid("unreachable").into(),
                )
            },
            false,
        ),
        None,
    )
}
