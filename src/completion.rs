//! Promises for fire(), settled through ONE threadsafe function per JS thread.
//!
//! Why not `env.spawn_future`: napi-rs creates a new ThreadsafeFunction (with its own
//! `uv_async_t`, async resource and cleanup hook) for every promise. Profiling showed that
//! plumbing at about a third of the client CPU per request. Here each JS thread (the main
//! thread, each worker) has one unref'd TSFN; a fire() creates a plain napi deferred, and its
//! future, when done, queues `(deferred, outcome)` on that TSFN, which settles it on the JS
//! thread. Completions that arrive together are drained in one loop wake-up. The TSFN holds
//! the event loop open exactly while promises are pending (ref on 0 -> 1, unref on 1 -> 0),
//! like an open socket would.

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::convert::Resolved;

/// A TSFN handle is documented as callable from any thread.
#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

impl Tsfn {
    /// Queues a completion; false when the environment is closing.
    fn call(self, data: *mut Completion) -> bool {
        let mode = sys::ThreadsafeFunctionCallMode::nonblocking;
        unsafe {
            sys::napi_call_threadsafe_function(self.0, data.cast(), mode) == sys::Status::napi_ok
        }
    }
}

/// A deferred is only touched again on its JS thread (in `settle`).
struct Deferred(sys::napi_deferred);
unsafe impl Send for Deferred {}

/// Every promise of this module settles with a fire() outcome: one value type per queue,
/// because the queue's C callback is monomorphic.
struct Completion {
    deferred: Deferred,
    value: Resolved,
}

thread_local! {
    /// This JS thread's TSFN (null until the first fire()) and its pending promise count.
    static QUEUE: Cell<sys::napi_threadsafe_function> = const { Cell::new(ptr::null_mut()) };
    static PENDING: Cell<usize> = const { Cell::new(0) };
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("{what} failed ({status})"),
        ))
    }
}

/// This thread's completion TSFN, created on first use.
fn queue(env: sys::napi_env) -> Result<Tsfn> {
    let existing = QUEUE.with(Cell::get);
    if !existing.is_null() {
        return Ok(Tsfn(existing));
    }
    let mut name = ptr::null_mut();
    let label = "dnastore-breaker completions";
    check(
        unsafe {
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            )
        },
        "napi_create_string_utf8",
    )?;
    let mut tsfn = ptr::null_mut();
    check(
        unsafe {
            sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                Some(settle),
                &mut tsfn,
            )
        },
        "napi_create_threadsafe_function",
    )?;
    check(
        unsafe { sys::napi_unref_threadsafe_function(env, tsfn) },
        "napi_unref_threadsafe_function",
    )?;
    QUEUE.with(|q| q.set(tsfn));
    Ok(Tsfn(tsfn))
}

/// Runs on the JS thread for each queued completion.
unsafe extern "C" fn settle(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    let completion = unsafe { Box::from_raw(data.cast::<Completion>()) };
    // A null env means the environment is tearing down: nobody is left to settle.
    if env.is_null() {
        return;
    }
    // Never unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Completion { deferred, value } = *completion;
        match unsafe { Resolved::to_napi_value(env, value) } {
            Ok(v) => unsafe { sys::napi_resolve_deferred(env, deferred.0, v) },
            Err(e) => {
                let err = unsafe { JsError::from(e).into_value(env) };
                unsafe { sys::napi_reject_deferred(env, deferred.0, err) }
            }
        };
    }));
    let left = PENDING.with(|p| {
        let n = p.get().saturating_sub(1);
        p.set(n);
        n
    });
    if left == 0 {
        let tsfn = QUEUE.with(Cell::get);
        if !tsfn.is_null() {
            unsafe { sys::napi_unref_threadsafe_function(env, tsfn) };
        }
    }
}

/// Starts `fut` on napi's tokio runtime (batched, see `dispatch`) and returns a Promise of
/// its output.
pub fn promise<'env, F>(env: &'env Env, fut: F) -> Result<Unknown<'env>>
where
    F: Future<Output = Resolved> + Send + 'static,
{
    let raw_env = env.raw();
    let tsfn = queue(raw_env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(
        unsafe { sys::napi_create_promise(raw_env, &mut deferred, &mut promise) },
        "napi_create_promise",
    )?;
    let was = PENDING.with(|p| {
        let n = p.get();
        p.set(n + 1);
        n
    });
    if was == 0 {
        check(
            unsafe { sys::napi_ref_threadsafe_function(raw_env, tsfn.0) },
            "napi_ref_threadsafe_function",
        )?;
    }
    let deferred = Deferred(deferred);
    crate::dispatch::submit(raw_env, async move {
        let value = fut.await;
        let data = Box::into_raw(Box::new(Completion { deferred, value }));
        if !tsfn.call(data) {
            // The environment is closing: drop the completion here instead of leaking it.
            drop(unsafe { Box::from_raw(data) });
        }
    })?;
    Ok(unsafe { Unknown::from_raw_unchecked(raw_env, promise) })
}
