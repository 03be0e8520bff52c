//! napi-rs binding for dnastore-core: thin adapters only. Behaviour lives in the core;
//! this crate converts JS values in and out, and runs the core's futures on its I/O runtime.
#![deny(clippy::all)]
// Every unsafe block states the invariant it relies on (the style guide's rule, enforced).
#![deny(clippy::undocumented_unsafe_blocks)]

mod abort;
mod bound;
mod breaker;
mod bridge;
mod control;
mod convert;
mod effective;
mod events;
mod fast;
mod fire;
mod fleet;
mod fleet_admin;
mod guarded;
mod options;
mod outbox;
mod outbox_admin;
mod throw;

/// Buffers are allocated on the I/O thread and freed on the JS thread (and back); with
/// glibc malloc those cross-thread frees contend on arena locks (~8 % of client CPU in the
/// bench profile). mimalloc's free lists are per thread and cross-thread frees are cheap.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the allocator's freed pages to the OS now (mimalloc's `mi_collect(true)`):
/// mimalloc keeps freed pages for reuse, so the resident set does not shrink when memory
/// is freed. For measurements (bench/memory-per-breaker.js) that read RSS after freeing.
#[napi(js_name = "__collectMemory")]
pub fn collect_memory() {
    // SAFETY: mi_collect takes no pointer and may be called from any thread at any time
    // outside the allocator; it frees only pages with no live block in them.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

pub use abort::{abort_call, pending_aborts};
pub use breaker::NativeBreaker;
pub use effective::effective_config;
pub use fleet_admin::fleet_circuit;
pub use guarded::NativeCircuit;
pub use outbox_admin::NativeOutboxAdmin;

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
        expected_panic();
        panic!("test panic (sync)");
    }
    let guarded = fire::guarded(
        async {
            if std::hint::black_box(true) {
                expected_panic();
                panic!("test panic (async)");
            }
            dnastore_core::CallOutcome::Rejected(
                dnastore_core::CallError::invalid("unreachable").into(),
            )
        },
        false,
    );
    bridge::promise(
        env,
        async move { fire::settle(guarded.await, None) },
        // Inline when nothing else is pending: the panic is then caught on the JS thread's
        // own runtime, which must settle it like the I/O thread does.
        bridge::Run::InlineIfLone,
    )
}

/// Test hook: `[calls run on this JS thread's own runtime, turns of it, rounds of the turns
/// that started a call, calls woken in one turn that finished only in a later one]` so far
/// (see `bridge::inline_stats`): how a test tells an inline call from one sent to the I/O thread, counts
/// the driver polls starting a lone call costs, and sees a wake-up left queued.
#[napi(js_name = "__inlineStats")]
pub fn inline_stats() -> Vec<f64> {
    bridge::inline_stats().iter().map(|&n| n as f64).collect()
}

thread_local! {
    /// Set just before [`test_panic`]'s own panic, on the thread that panics.
    static EXPECTED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the next panic on this thread as the test hook's: the panic hook prints one line
/// for it instead of the message and a backtrace (RUST_BACKTRACE is often set), so a passing
/// test log has no "stack backtrace:". The hook is installed on the first test panic only,
/// so a service that never calls `__testPanic` keeps the process's own hook untouched, and
/// every other panic still goes to the hook that was there before.
fn expected_panic() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if EXPECTED_PANIC.with(|e| e.replace(false)) {
                let at = info
                    .location()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default();
                eprintln!("dnastore-breaker: __testPanic panicked{at} (expected; caught)");
            } else {
                previous(info);
            }
        }));
    });
    EXPECTED_PANIC.with(|e| e.set(true));
}
