//! Promises settled through ONE threadsafe function per JS thread, signalled once per burst
//! of completions.
//!
//! Why not `env.spawn_future`: napi-rs creates a new ThreadsafeFunction (with its own
//! `uv_async_t`, async resource and cleanup hook) for every promise. Profiling showed that
//! plumbing at about a third of the client CPU per request. Here each JS thread (the main
//! thread, each worker) has one unref'd TSFN and one lock-free inbox; a fire() creates a
//! plain napi deferred, and its future, when done, pushes `(deferred, settle function)` on
//! the inbox. Only the push that finds the inbox empty signals the JS thread, and it does so
//! from a task queued behind the ones the runtime has ready, so the completions of one
//! burst of socket events wake the JS thread once; its callback settles everything queued
//! by then, in completion order. The TSFN holds the event loop open exactly while promises
//! are pending (ref on 0 -> 1, unref on 1 -> 0), like an open socket would.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use napi::bindgen_prelude::*;
use napi::sys;

use super::Settle;

/// A deferred is only touched again on its JS thread (in `drain`).
struct Deferred(sys::napi_deferred);
// SAFETY: the handle is an opaque pointer that this crate only passes back to napi on the
// JS thread that created it (`drain` runs there); other threads only move it.
unsafe impl Send for Deferred {}

/// A finished future waiting for its JS thread to settle its promise: an intrusive stack node.
pub(super) struct Completion {
    deferred: Deferred,
    settle: Settle,
    next: *mut Completion,
}

/// Completions for one JS thread, pushed from the I/O runtime, taken all at once on the
/// JS thread. A Treiber stack: push is one CAS, take is one swap (no single pops, so no ABA).
struct Inbox {
    head: AtomicPtr<Completion>,
    /// The TSFN, `None` once its environment has finalized it. Node (before v24.14) frees a
    /// TSFN when its environment is torn down (a terminated worker), whoever still holds
    /// it: signalling it then would be a use-after-free. `signal` holds the read lock across
    /// the call, and the finalizer takes the write lock, so the TSFN is never freed mid-call.
    tsfn: RwLock<Option<Tsfn>>,
}

/// A TSFN handle is documented as callable from any thread.
#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: the stack is only touched through atomics (`push` publishes a node with Release,
// `take` acquires the whole list), and each node is owned by exactly one side at a time;
// the TSFN handle is only read under the lock, and napi documents
// `napi_call_threadsafe_function` as callable from any thread.
unsafe impl Send for Inbox {}
// SAFETY: as for Send: shared access goes through the atomic head and the RwLock.
unsafe impl Sync for Inbox {}

impl Inbox {
    /// Pushes; true when the inbox was empty (the pusher must signal the JS thread).
    fn push(&self, c: Box<Completion>) -> bool {
        let node = Box::into_raw(c);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from Box::into_raw above and is not yet published, so this
            // thread has the only access to it.
            unsafe { (*node).next = head };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return head.is_null(),
                Err(h) => head = h,
            }
        }
    }

    /// Everything pushed so far, oldest first.
    fn take(&self) -> Vec<Completion> {
        let mut p = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        let mut out = Vec::new();
        while !p.is_null() {
            // SAFETY: every node on the stack came from Box::into_raw in `push`, and the
            // swap above took the whole list, so each node is reclaimed exactly once.
            let node = *unsafe { Box::from_raw(p) };
            p = node.next;
            out.push(node);
        }
        out.reverse();
        out
    }

    /// Wakes the JS thread. Once its environment is closing this does nothing, and what
    /// is queued stays in the inbox, freed with it.
    fn signal(&self) {
        let closing = {
            let tsfn = self.tsfn.read();
            let Some(t) = *tsfn else { return };
            let mode = sys::ThreadsafeFunctionCallMode::nonblocking;
            // SAFETY: the TSFN is alive while it is in the lock (the finalizer clears it under
            // the write lock before napi frees it), and the call is documented thread-safe.
            let status = unsafe { sys::napi_call_threadsafe_function(t.0, ptr::null_mut(), mode) };
            status == sys::Status::napi_closing
        };
        if closing {
            *self.tsfn.write() = None;
        }
    }

    /// The TSFN for calls on the JS thread, whose environment is alive while it runs.
    fn tsfn(&self) -> Option<sys::napi_threadsafe_function> {
        self.tsfn.read().map(|t| t.0)
    }
}

impl Drop for Inbox {
    /// Completions nobody will settle (the environment went away) are freed here.
    fn drop(&mut self) {
        drop(self.take());
    }
}

thread_local! {
    /// This JS thread's inbox (None until the first fire()) and its pending promise count.
    static INBOX: RefCell<Option<Arc<Inbox>>> = const { RefCell::new(None) };
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

/// This thread's inbox and its TSFN, created on first use.
fn inbox(env: sys::napi_env) -> Result<Arc<Inbox>> {
    if let Some(i) = INBOX.with(|c| c.borrow().clone()) {
        return Ok(i);
    }
    // The I/O thread signals this TSFN from outside any environment (see `runtime`).
    napi::bindgen_prelude::retain_current_module_for_unload_safety();
    let mut name = ptr::null_mut();
    let label = "dnastore-breaker completions";
    check(
        // SAFETY: called on the JS thread with its live env; `label` outlives the call and its
        // length is passed explicitly.
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
    let inbox = Arc::new(Inbox {
        head: AtomicPtr::new(ptr::null_mut()),
        tsfn: RwLock::new(None),
    });
    // The finalizer's reference, released when the TSFN is finalized.
    let finalize_data = Arc::into_raw(inbox.clone()).cast_mut().cast::<c_void>();
    let mut tsfn = ptr::null_mut();
    // SAFETY: JS thread, live env; `finalize_data` is an owned Arc reference that the
    // `finalized` callback takes back exactly once (or the error path below, if creation failed).
    let status = unsafe {
        sys::napi_create_threadsafe_function(
            env,
            ptr::null_mut(),
            ptr::null_mut(),
            name,
            0,
            1,
            finalize_data,
            Some(finalized),
            ptr::null_mut(),
            Some(drain),
            &mut tsfn,
        )
    };
    if let Err(e) = check(status, "napi_create_threadsafe_function") {
        // SAFETY: creation failed, so napi will never call `finalized`: this is the only
        // owner of the reference made by Arc::into_raw above.
        drop(unsafe { Arc::from_raw(finalize_data.cast::<Inbox>()) });
        return Err(e);
    }
    check(
        // SAFETY: JS thread of the env that created the TSFN, which was just created.
        unsafe { sys::napi_unref_threadsafe_function(env, tsfn) },
        "napi_unref_threadsafe_function",
    )?;
    *inbox.tsfn.write() = Some(Tsfn(tsfn));
    INBOX.with(|c| *c.borrow_mut() = Some(inbox.clone()));
    Ok(inbox)
}

/// The environment finalized the TSFN (it is about to be freed): no more signals.
unsafe extern "C" fn finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Arc reference given to napi_create_threadsafe_function; napi
    // calls this finalizer once, so the reference is taken back exactly once.
    let inbox = unsafe { Arc::from_raw(data.cast::<Inbox>()) };
    *inbox.tsfn.write() = None;
}

/// Runs on the JS thread after a signal: settles every completion queued by now.
unsafe extern "C" fn drain(
    env: sys::napi_env,
    _js_cb: sys::napi_value,
    _context: *mut c_void,
    _data: *mut c_void,
) {
    // A null env means the environment is tearing down: nobody is left to settle.
    if env.is_null() {
        return;
    }
    // try_with: never panic (and abort) in a C callback, even during thread teardown.
    let Some(inbox) = INBOX.try_with(|c| c.borrow().clone()).ok().flatten() else {
        return;
    };
    let batch = inbox.take();
    // SAFETY: the JS thread of `env`, alive (checked above), inside napi's own callback.
    unsafe { settle(env, batch) };
}

/// Settles `batch` (this JS thread's completions) and unrefs the TSFN once nothing is
/// pending.
///
/// # Safety
/// Runs on the JS thread of `env`, with `env` alive and a handle scope open.
pub(super) unsafe fn settle(env: sys::napi_env, batch: Vec<Completion>) {
    if batch.is_empty() {
        return;
    }
    let settled = batch.len();
    for Completion {
        deferred, settle, ..
    } in batch
    {
        // Never unwind into C.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // The settle function runs on the JS thread of the env that created its deferred.
            match settle(env) {
                // SAFETY: the caller runs this on the JS thread of the env that created each
                // deferred (one inbox and one local runtime per JS thread), with that env
                // alive; each deferred is settled exactly once, here.
                Ok(v) => unsafe { sys::napi_resolve_deferred(env, deferred.0, v) },
                Err(e) => {
                    // SAFETY: as above.
                    let err = unsafe { JsError::from(e).into_value(env) };
                    // SAFETY: as above.
                    unsafe { sys::napi_reject_deferred(env, deferred.0, err) }
                }
            };
        }));
    }
    let left = PENDING
        .try_with(|p| {
            let n = p.get().saturating_sub(settled);
            p.set(n);
            n
        })
        .unwrap_or(0);
    let tsfn = INBOX
        .try_with(|c| c.borrow().as_ref().and_then(|i| i.tsfn()))
        .ok()
        .flatten();
    if let (0, Some(t)) = (left, tsfn) {
        // SAFETY: the TSFN's own JS thread, env alive (the caller's contract).
        unsafe { sys::napi_unref_threadsafe_function(env, t) };
    }
}

/// Promises of this JS thread not settled yet.
pub(super) fn pending() -> usize {
    PENDING.try_with(Cell::get).unwrap_or(0)
}

/// Queues completions of this JS thread like the I/O runtime does: they settle when its
/// signal is processed, after whatever its loop already had queued (events).
pub(super) fn post(batch: Vec<Completion>) {
    let Some(inbox) = INBOX.try_with(|c| c.borrow().clone()).ok().flatten() else {
        return;
    };
    for c in batch {
        if inbox.push(Box::new(c)) {
            inbox.signal();
        }
    }
}

/// Starts `fut` (batched, see `dispatch`) and returns a Promise that its output settles on
/// this JS thread. `inline`: it may run on this thread's own runtime (see `local`).
pub(super) fn promise<'env, F>(env: &'env Env, fut: F, inline: bool) -> Result<Unknown<'env>>
where
    F: Future<Output = Settle> + Send + 'static,
{
    let raw_env = env.raw();
    let inbox = inbox(raw_env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check(
        // SAFETY: JS thread, live env, out-pointers to locals.
        unsafe { sys::napi_create_promise(raw_env, &mut deferred, &mut promise) },
        "napi_create_promise",
    )?;
    let tsfn = inbox
        .tsfn()
        .ok_or_else(|| Error::new(Status::GenericFailure, "the environment is closing"))?;
    let was = PENDING.with(|p| p.get());
    if was == 0 {
        check(
            // SAFETY: the TSFN's own JS thread, env alive.
            unsafe { sys::napi_ref_threadsafe_function(raw_env, tsfn) },
            "napi_ref_threadsafe_function",
        )?;
    }
    let deferred = Deferred(deferred);
    let raw_deferred = deferred.0;
    let fut = async move {
        let completion = Completion {
            deferred,
            settle: fut.await,
            next: ptr::null_mut(),
        };
        // Run inline (see `local`): settled by this JS thread right after the turn.
        if super::local::in_turn() {
            super::local::finished(completion);
            return;
        }
        if inbox.push(Box::new(completion)) {
            // Behind the tasks already ready: their completions ride on the same wake-up.
            tokio::spawn(async move { inbox.signal() });
        }
    };
    let queued = super::dispatch::submit(raw_env, fut, inline);
    if let Err(e) = queued {
        // The call was not queued: undo the ref and report the error (fire() throws it).
        // The promise is never handed out; resolving it frees its deferred (rejecting it
        // would raise an unhandled rejection nobody can catch).
        if was == 0 {
            // SAFETY: the TSFN's own JS thread, env alive.
            unsafe { sys::napi_unref_threadsafe_function(raw_env, tsfn) };
        }
        let mut undefined = ptr::null_mut();
        // SAFETY: JS thread, live env; the deferred was created above, never handed out
        // (the task holding it was dropped unstarted), and is settled once, here.
        unsafe {
            sys::napi_get_undefined(raw_env, &mut undefined);
            sys::napi_resolve_deferred(raw_env, raw_deferred, undefined);
        }
        return Err(e);
    }
    PENDING.with(|p| p.set(was + 1));
    // SAFETY: `promise` is a live value napi just created in this env and scope.
    Ok(unsafe { Unknown::from_raw_unchecked(raw_env, promise) })
}
