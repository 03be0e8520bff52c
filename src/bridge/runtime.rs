//! The process's I/O runtime: where every breaker's HTTP calls, retries and Redis traffic run.
//!
//! Why not napi-rs's runtime (a multi-thread runtime with one worker per core): every call
//! crosses from the JS thread to the runtime and back, and with several workers each
//! crossing also wakes workers to steal from each other. On the 2-core bench machine a
//! current-thread runtime on one dedicated thread measured 22-24 µs of client CPU per request
//! against 27-31 µs for napi-rs's runtime (bench/README.md), for the same throughput or
//! better. One thread serves far more calls than one JS thread can make (bare reqwest on one
//! thread: ~77k req/s here); services that fire from many worker threads can ask for a
//! work-stealing pool with `ioThreads` / DNASTORE_IO_THREADS. CPU-heavy steps (validating a
//! large JSON body) run on the runtime's blocking pool, so they never stall other calls.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

struct Io {
    handle: Handle,
    threads: u32,
}

static IO: OnceLock<Result<Io, String>> = OnceLock::new();

fn build(threads: u32) -> Result<Io, String> {
    // The I/O thread outlives every environment (a worker that loaded the addon may exit
    // while it runs): pin the addon's image so Node's unload of it when its last
    // environment goes away can never unmap code that thread runs. glibc already marks this
    // image NODELETE (its TLS destructors), but that is an accident of the toolchain.
    napi::bindgen_prelude::retain_current_module_for_unload_safety();
    let fail = |e: std::io::Error| format!("could not start the I/O runtime: {e}");
    let handle = if threads <= 1 {
        let rt = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let handle = rt.handle().clone();
        // Lives as long as the process; at exit the OS reclaims it with everything else.
        std::thread::Builder::new()
            .name("dnastore-io".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(fail)?;
        handle
    } else {
        let rt = Builder::new_multi_thread()
            .worker_threads(threads as usize)
            .thread_name("dnastore-io")
            .enable_all()
            .build()
            .map_err(fail)?;
        let handle = rt.handle().clone();
        // Never dropped: dropping a runtime from inside an async context panics, and the
        // runtime must outlive every breaker anyway.
        std::mem::forget(rt);
        handle
    };
    Ok(Io { handle, threads })
}

/// Starts the runtime with `threads` unless it runs already. Returns the thread count it
/// runs with (the first caller's), or why it could not start.
pub fn start(threads: u32) -> Result<u32, String> {
    match IO.get_or_init(|| build(threads)) {
        Ok(io) => Ok(io.threads),
        Err(e) => Err(e.clone()),
    }
}

/// The runtime (started with the default when no breaker started it, as in `__testPanic`).
pub fn handle() -> Option<&'static Handle> {
    let default = dnastore_core::config::spec::io_threads.default as u32;
    IO.get_or_init(|| build(default))
        .as_ref()
        .ok()
        .map(|io| &io.handle)
}
