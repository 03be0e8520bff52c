//! The per-request calls, `fire(url)` (which short-circuits an open circuit first) and
//! `tryReject()` (the same check, for calls with an `init`), as hand-written napi callbacks
//! bound to one breaker.
//!
//! Why: a `#[napi]` class method's per-call glue was most of the native time of a call on
//! the open circuit (see `bound`). Behaviour is `fire`'s, shared with the class method;
//! only argument plumbing lives here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use dnastore_core::{Breaker, Code};
use napi::bindgen_prelude::*;
use napi::sys;

use crate::bound::{bind, boolean, throw, with_args, Callback};
use crate::fire::{self, FireArgs, FireResult, HandleState};

/// What each function is bound to; freed when the function object is collected.
struct Bound {
    breaker: Arc<Breaker>,
    handle: Arc<HandleState>,
}

/// `{ tryReject, fire }` bound to `b`.
pub fn functions<'env>(
    env: &'env Env,
    b: &Arc<Breaker>,
    handle: &Arc<HandleState>,
) -> Result<Object<'env>> {
    let mut obj = Object::new(env)?;
    obj.set_named_property(
        "tryReject",
        function(env, "tryReject", try_reject_cb, b, handle)?,
    )?;
    obj.set_named_property("fire", function(env, "fire", fire_cb, b, handle)?)?;
    Ok(obj)
}

fn function<'env>(
    env: &'env Env,
    name: &str,
    cb: Callback,
    b: &Arc<Breaker>,
    handle: &Arc<HandleState>,
) -> Result<Unknown<'env>> {
    let bound = Bound {
        breaker: b.clone(),
        handle: handle.clone(),
    };
    bind(env, name, cb, bound)
}

unsafe extern "C" fn try_reject_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: napi's own callback arguments.
    let rejected = unsafe {
        with_args::<Bound, 0, _>(env, info, |bound, _| {
            // A panic here would be a bug; the call then takes the full path, which reports it.
            catch_unwind(AssertUnwindSafe(|| {
                fire::try_reject(&bound.breaker, &bound.handle)
            }))
            .unwrap_or(false)
        })
    };
    match rejected {
        Some(r) => boolean(env, r),
        None => throw(env, Code::Internal, "tryReject: napi_get_cb_info failed"),
    }
}

unsafe extern "C" fn fire_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let call = |bound: &Bound, [url]: [sys::napi_value; 1]| {
        catch_unwind(AssertUnwindSafe(|| -> Result<sys::napi_value> {
            // Open circuit, nothing cached: null (the facade resolves the fallback) before
            // the URL is converted; the same answer fire() gives, for less.
            if fire::try_reject(&bound.breaker, &bound.handle) {
                // SAFETY: env of this callback.
                return unsafe { Null::to_napi_value(env, Null) };
            }
            // SAFETY: `url` is an argument value of this callback, in its scope.
            let url = unsafe { String::from_napi_value(env, url) }?;
            let e = Env::from_raw(env);
            let out: FireResult<'_> =
                fire::fire(&e, &bound.breaker, &bound.handle, FireArgs::url_only(url))?;
            // SAFETY: env of this callback; `out` holds values of this scope.
            unsafe { FireResult::to_napi_value(env, out) }
        }))
    };
    // SAFETY: napi's own callback arguments.
    let result = unsafe { with_args::<Bound, 1, _>(env, info, call) };
    match result {
        None => throw(env, Code::Internal, "fire: napi_get_cb_info failed"),
        Some(Ok(Ok(v))) => v,
        // napi-rs errors here are argument errors (a non-string URL): the facade maps
        // their Status code to EINVALID, as for the class method.
        Some(Ok(Err(e))) if e.status == Status::PendingException => ptr::null_mut(),
        Some(Ok(Err(e))) => {
            // SAFETY: env of this callback, no exception pending (checked above).
            unsafe { JsError::from(e).throw_into(env) };
            ptr::null_mut()
        }
        Some(Err(_)) => throw(
            env,
            Code::Internal,
            "internal error in dnastore-breaker (a bug; please report it)",
        ),
    }
}
