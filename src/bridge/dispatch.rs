//! Hands the call futures one JS turn starts to the I/O runtime (`runtime`) as one batch.
//!
//! Why: spawning onto the runtime from the JS thread (a thread outside the runtime) pushes
//! to the runtime's shared queue under a lock and, when the runtime sleeps, wakes it with a
//! syscall: per call, that was the largest kernel cost on the JS thread in the bench
//! profile. Here fire() only pushes its future to this thread's batch. Two
//! unref'd libuv handles hand the batch over: a check handle (right after the poll phase,
//! where I/O callbacks and the completions that started these calls ran) and a prepare
//! handle (before the loop may block in poll, so calls started from timers or immediates
//! never wait for unrelated I/O). The batch becomes one task that spawns each call from
//! inside the runtime (local queues; with several I/O threads, stealable by idle ones).
//!
//! A call therefore starts when the JS code that fired it yields to the event loop, as a
//! socket write from JS would. Pending promises keep the loop alive (see `completion`), so
//! a batch is always handed over.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

use super::uv::{
    alloc_handle, free_handle, uv_check_init, uv_check_start, uv_check_stop, uv_close,
    uv_prepare_init, uv_prepare_start, uv_prepare_stop, uv_unref,
};

/// One JS thread's batch and the two handles that flush it.
struct Dispatcher {
    env: sys::napi_env,
    prepare: *mut c_void,
    check: *mut c_void,
    batch: Vec<Task>,
    /// The batch is one call that may run inline (see `local`).
    inline: bool,
    armed: bool,
}

thread_local! {
    static DISPATCH: RefCell<Option<Dispatcher>> = const { RefCell::new(None) };
}

fn failed(what: &str) -> Error {
    Error::new(Status::GenericFailure, format!("{what} failed"))
}

fn init(env: sys::napi_env) -> Result<Dispatcher> {
    let mut lp = ptr::null_mut();
    // SAFETY: JS thread, live env, out-pointer to a local.
    if unsafe { sys::napi_get_uv_event_loop(env, &mut lp) } != sys::Status::napi_ok {
        return Err(failed("napi_get_uv_event_loop"));
    }
    let prepare = alloc_handle();
    let check = alloc_handle();
    // SAFETY: `lp` is this JS thread's live loop; the handles are zeroed, 8-byte aligned
    // allocations at least `uv_handle_size` bytes long, used only on this thread.
    unsafe {
        if uv_prepare_init(lp, prepare) != 0 || uv_check_init(lp, check) != 0 {
            // Not registered with the loop (init only fails on bad arguments): plain frees.
            free_handle(prepare);
            free_handle(check);
            return Err(failed("uv_prepare_init/uv_check_init"));
        }
        // Never what keeps the process alive: pending promises do that.
        uv_unref(prepare);
        uv_unref(check);
    }
    // SAFETY: JS thread, live env; `cleanup` takes no data.
    let status = unsafe { sys::napi_add_env_cleanup_hook(env, Some(cleanup), ptr::null_mut()) };
    if status != sys::Status::napi_ok {
        // SAFETY: initialised handles of this thread's loop, closed once; libuv frees them
        // through `free_handle` after the close completes.
        unsafe {
            uv_close(prepare, Some(free_handle));
            uv_close(check, Some(free_handle));
        }
        return Err(failed("napi_add_env_cleanup_hook"));
    }
    Ok(Dispatcher {
        env,
        prepare,
        check,
        batch: Vec::new(),
        inline: false,
        armed: false,
    })
}

/// The environment (main thread or a worker) is going away: close the handles so its loop
/// can close. Calls still batched are dropped unstarted; each gives its circuit permit back
/// (`Breaker::execute`), and nobody is left to settle their promises.
unsafe extern "C" fn cleanup(_arg: *mut c_void) {
    if let Some(d) = DISPATCH.try_with(|c| c.borrow_mut().take()).ok().flatten() {
        // SAFETY: the env's cleanup hook runs on its JS thread while its loop is alive; the
        // handles were taken out of the thread-local, so they are closed exactly once.
        unsafe {
            uv_close(d.prepare, Some(free_handle));
            uv_close(d.check, Some(free_handle));
        }
    }
}

/// Queues `task` to start when this JS turn ends. `inline`: it may run on this thread's own
/// runtime if it turns out to be the only call of this thread (see `flush`).
pub(super) fn submit(
    env: sys::napi_env,
    task: impl Future<Output = ()> + Send + 'static,
    inline: bool,
) -> Result<()> {
    if super::runtime::handle().is_none() {
        return Err(failed("starting the I/O runtime"));
    }
    DISPATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(init(env)?);
        }
        let d = slot.as_mut().expect("initialised above");
        d.inline = d.batch.is_empty() && inline;
        d.batch.push(Box::pin(task));
        if !d.armed {
            d.armed = true;
            // SAFETY: this thread's initialised handles, on its own loop.
            unsafe {
                uv_prepare_start(d.prepare, flush);
                uv_check_start(d.check, flush);
            }
        }
        Ok(())
    })
}

/// Runs on the JS thread from libuv: hands the batch to the runtime and disarms.
///
/// A lone call (the batch is one call that may run inline, and no other promise of this
/// thread is pending) runs on this thread's own runtime instead (`local`). Deciding here,
/// not in fire(), is what makes it lone: the 50 calls a burst of completions starts in one
/// JS turn all go to the I/O thread, even the first.
unsafe extern "C" fn flush(handle: *mut c_void) {
    // try_with: never panic (and abort) in a C callback, even during thread teardown.
    let taken = DISPATCH.try_with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = slot.as_mut()?;
        d.armed = false;
        // SAFETY: called by libuv on this thread for these initialised handles.
        unsafe {
            uv_prepare_stop(d.prepare);
            uv_check_stop(d.check);
        }
        let inline = std::mem::take(&mut d.inline);
        Some((
            std::mem::take(&mut d.batch),
            inline,
            d.env,
            handle == d.prepare,
        ))
    });
    let Some((mut batch, inline, env, in_prepare)) =
        taken.ok().flatten().filter(|(b, ..)| !b.is_empty())
    else {
        return;
    };
    // Never unwind into libuv (the runtime may be gone at process exit).
    let _ = catch_unwind(AssertUnwindSafe(move || {
        if inline
            && batch.len() == 1
            && super::completion::pending() == 1
            && super::local::usable(env)
        {
            if let Some(task) = batch.pop() {
                super::local::spawn(task, in_prepare);
            }
            return;
        }
        // `submit` checked that the runtime runs; it never stops once started.
        if let Some(rt) = super::runtime::handle() {
            rt.spawn(async move {
                for task in batch {
                    tokio::spawn(task);
                }
            });
        }
    }));
}
