//! The runtime bridge: how a future started from JavaScript runs on tokio and settles a
//! Promise on its JS thread. The rest of the binding uses only what this file exports; it
//! knows nothing of breakers, outboxes or aborts (a future brings its own settle function).
//!
//! - `runtime`: the process's I/O runtime (one dedicated thread, or a pool with `ioThreads`).
//! - `dispatch`: the futures one JS turn starts go to that runtime as one batch, handed over
//!   by libuv check/prepare handles when the turn ends.
//! - `local`: a lone call runs on the JS thread's own current-thread runtime instead, driven
//!   by the thread's libuv loop (its epoll descriptor watched by a poll handle).
//! - `completion`: promises settle through one threadsafe function per JS thread, signalled
//!   once per burst; calls run inline settle right after their turn.
//! - `uv`: the part of libuv's API these use.
//!
//! # Alternatives weighed (issue 27), and why this stays hand-made
//!
//! **napi-rs's custom async runtime (napi 3.16, `AsyncRuntime` behind the `async-runtime`
//! feature; Cargo.lock has 3.16.1).** It chooses *where* napi-rs's own futures run: one
//! backend per addon image, registered from `#[module_init]`, that receives each
//! `#[napi] async fn` / `Env::spawn_future` future as an `AsyncRuntimeTask` to poll. It does
//! not change how those futures settle their promise: each task wraps a `JsDeferred`, which
//! on native targets creates one threadsafe function and one env cleanup hook per promise
//! and settles through `napi_call_threadsafe_function`, a uv_async wake-up of the JS thread,
//! even when the future finished on that thread (the synchronous settle is wasm-only). That
//! per-promise plumbing is what `completion` replaced (a third of the client CPU per call
//! when it was measured, bench/README.md), and a lone call settling in the same libuv
//! callback that read its response is where `local` gets its saving; nor does the hook drive
//! anything from the JS thread's loop, so `local` and `dispatch` would stay as they are.
//! Measured with a prototype backend that hands napi-rs's tasks to `dispatch` (so lone calls
//! still ran on this thread's runtime, 101 of 101) and lone calls' promises made by
//! `execute_tokio_future`: at one call in flight, interleaved A/B of 8 pairs of
//! `bench/contender.js` runs on the loaded 2-core VM, 1.11x the CPU per call (pairs
//! 1.02-1.47), and 11.4 system calls per call against 7.5 (`npm run bench:syscalls`: the
//! uv_async write and read of each promise's threadsafe function, one more loop iteration).
//! Over the 5 % the issue allows: not adopted.
//!
//! **tokio's `LocalEventLoop`.** Not in any tokio release: tokio 1.54.1 (Cargo.lock) has
//! `LocalRuntime` but no event-loop flavour; `EventLoop` / `LocalEventLoop` driven by a host
//! loop are an open pull request (tokio-rs/tokio#8479, `tokio_unstable`), so adopting it
//! means a git dependency on unmerged code and `--cfg tokio_unstable` for the whole build.
//! Its native design also costs what `local` exists to avoid: the event loop keeps a thread
//! parked in the driver, which wakes the host through a `Waker` for every I/O event or
//! timer, i.e. a second thread's sleep and wake-up per response. Not adopted; worth another
//! look if it lands with a way to let the host poll the driver itself.
//!
//! **Finding tokio's driver.** tokio exposes no descriptor of its driver and takes none to
//! build it on (see `local::driver`), so it is found from outside, now by asking the kernel
//! which epoll holds a probe registered with the runtime rather than by diffing
//! `/proc/self/fd` (which two threads building runtimes at once defeated).

mod completion;
mod dispatch;
mod local;
mod runtime;
mod uv;

use std::future::Future;

use napi::bindgen_prelude::{Env, Result, ToNapiValue, Unknown};
use napi::sys;

/// How a promise settles, called on its JS thread with its env: it resolves with the value
/// the function makes, or rejects with its error.
pub type Settle = Box<dyn FnOnce(sys::napi_env) -> Result<sys::napi_value> + Send>;

/// Settles with `value`: resolves with it, or rejects with its error.
pub fn settle_with<T: ToNapiValue + Send + 'static>(value: Result<T>) -> Settle {
    Box::new(move |env| {
        // SAFETY: a settle function runs on the JS thread of `env`, with `env` alive
        // (`completion::settle`'s contract).
        value.and_then(|v| unsafe { T::to_napi_value(env, v) })
    })
}

/// Where a future may run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// On the I/O runtime.
    Io,
    /// On this JS thread's own runtime if it turns out to be the only call of this thread
    /// when the turn ends (see `local`); otherwise on the I/O runtime.
    InlineIfLone,
}

/// Starts `fut` when this JS turn ends and returns a Promise its settle function settles.
/// An error means it was not started (the runtime could not start, or the environment is
/// closing): nothing of `fut` ran, and the caller reports it.
pub fn promise<'env, F>(env: &'env Env, fut: F, run: Run) -> Result<Unknown<'env>>
where
    F: Future<Output = Settle> + Send + 'static,
{
    completion::promise(env, fut, run == Run::InlineIfLone)
}

/// Promises of this JS thread not settled yet.
pub fn pending() -> usize {
    completion::pending()
}

/// Whether the caller runs on this JS thread's own runtime (a lone call, in a turn).
pub fn inline() -> bool {
    local::in_turn()
}

/// An event was queued for this thread's listeners: a call running inline settles behind it
/// (see `local::event_queued`).
pub fn event_queued() {
    local::event_queued()
}

/// Starts the I/O runtime with `threads` unless it runs already; the thread count it runs
/// with, or why it could not start.
pub fn start_io(threads: u32) -> std::result::Result<u32, String> {
    runtime::start(threads)
}

/// The I/O runtime (started with the default thread count if nothing started it yet).
pub fn io_handle() -> Option<&'static tokio::runtime::Handle> {
    runtime::handle()
}

/// Test counters of this JS thread's own runtime (see `local::Stat`): calls run there, its
/// turns, the driver polls of the turns that started a call, calls woken in one turn that
/// finished only in a later one.
pub fn inline_stats() -> [u64; 4] {
    local::stats()
}
