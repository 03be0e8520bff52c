//! Cancellation for calls with an AbortSignal, without a JS object per call.
//!
//! Why not a `#[napi]` class instance per call (as before): a wrapped object carries a
//! finalizer, so V8 cannot free it in a scavenge: every call with a signal promoted an object
//! to the old generation, to be freed by a full GC only (issue 11, defect 4, reported as a heap
//! leak). Here the facade numbers its calls; a call with a signal registers a token under its
//! number in this JS thread's table, `abortCall(id)` cancels it, and the entry is removed when
//! the call's promise settles (`completion::drain`, same thread). Measured (bench, A/B in
//! bench/README.md): 30.2 against 31.9 µs of client CPU per call with one long-lived signal at
//! 50 in flight; `__test__/memory.test.js` holds the heap flat over 200,000 such calls.

use std::cell::RefCell;
use std::collections::HashMap;

use dnastore_core::CancellationToken;
use napi_derive::napi;

thread_local! {
    static ABORTS: RefCell<HashMap<u64, CancellationToken>> = RefCell::new(HashMap::new());
}

/// A call id from the facade: a positive safe integer.
pub fn id(v: f64) -> Option<u64> {
    (v.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&v)).then_some(v as u64)
}

/// The token of call `id`, registered until [`forget`].
pub fn register(id: u64) -> CancellationToken {
    let token = CancellationToken::new();
    // try_with: a thread being torn down registers nothing (the call cannot be aborted).
    let _ = ABORTS.try_with(|m| m.borrow_mut().insert(id, token.clone()));
    token
}

/// The call settled: its id can no longer be aborted.
pub fn forget(id: u64) {
    let _ = ABORTS.try_with(|m| m.borrow_mut().remove(&id));
}

/// Aborts the call the facade numbered `id`, if it is still running on this thread.
#[napi(catch_unwind)]
pub fn abort_call(id: f64) {
    if let Some(id) = self::id(id) {
        let token = ABORTS
            .try_with(|m| m.borrow().get(&id).cloned())
            .ok()
            .flatten();
        if let Some(t) = token {
            t.cancel();
        }
    }
}

/// Calls with a signal still running on this thread (the memory test reads it).
#[napi(js_name = "__pendingAborts")]
pub fn pending_aborts() -> u32 {
    ABORTS.try_with(|m| m.borrow().len() as u32).unwrap_or(0)
}
