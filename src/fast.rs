//! The per-request call, `fire(url, ...init's fields)`, as a hand-written napi callback
//! bound to one breaker: one crossing per call, an open circuit answered before the URL or
//! any field is converted (but `durable` and, with outbox `all`, `method`: a call that may be
//! a durable write must reach `fire`, which queues it).
//!
//! Why: a `#[napi]` class method's per-call glue was most of the native time of a call on
//! the open circuit (see `bound`). Behaviour is `fire`'s; only argument plumbing lives here.
//!
//! Why `init`'s fields as arguments, not one options object: until issue 27 a call with an
//! `init` crossed twice, `tryReject()` then a class method taking the same 12 arguments. One
//! crossing with the facade's arguments object, read by name here (`napi_get_named_property`
//! per field, `durable` before the open-circuit check), measured against that, interleaved
//! A/B, 8 pairs of `bench/contender.js` runs on the loaded 2-core VM (headers + timeout init):
//! open circuit 0.60x the calls/s (pairs 0.51-0.76), closed 1.023x the CPU per call at
//! concurrency 1 and 1.034x at 50. One crossing with the fields as arguments: open 1.27x the
//! calls/s (pairs 0.68-2.08), closed 0.936x the CPU per call at 1 (0.79-1.03) and 0.959x at
//! 50 (0.90-1.04); calls without an init unchanged within noise (1.02x, 1.04x, pairs
//! 0.90-1.13). Hence arguments; the facade's own `init` stays an object, checked in JS.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use dnastore_core::config::OutboxMode;
use dnastore_core::{Breaker, Code};
use napi::bindgen_prelude::*;
use napi::sys;

use crate::bound::{bind, throw, with_args};
use crate::fire::{self, FireInit, FireResult, HandleState};

/// What the function is bound to; freed when the function object is collected.
struct Bound {
    breaker: Arc<Breaker>,
    handle: Arc<HandleState>,
}

/// `{ fire }` bound to `b`.
pub fn functions<'env>(
    env: &'env Env,
    b: &Arc<Breaker>,
    handle: &Arc<HandleState>,
) -> Result<Object<'env>> {
    let bound = Bound {
        breaker: b.clone(),
        handle: handle.clone(),
    };
    let mut obj = Object::new(env)?;
    obj.set_named_property("fire", bind(env, "fire", fire_cb, bound)?)?;
    Ok(obj)
}

/// Whether `v` is undefined (an argument not passed) or null.
///
/// # Safety
/// `v` is a value of the callback scope of `env`.
unsafe fn absent(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut t = sys::ValueType::napi_undefined;
    // SAFETY: the caller's contract; an out-pointer to a local.
    unsafe { sys::napi_typeof(env, v, &mut t) };
    t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null
}

/// Whether a call with these arguments may be a durable write, which an open circuit queues
/// instead of short-circuiting: `durable: true`, or outbox `all` and a method named (the
/// core decides which methods qualify, in `fire`).
///
/// # Safety
/// `method` and `durable` are values of the callback scope of `env`.
unsafe fn may_queue(
    env: sys::napi_env,
    method: sys::napi_value,
    durable: sys::napi_value,
    b: &Breaker,
) -> bool {
    let mut on = false;
    // SAFETY: the caller's contract; an out-pointer to a local. Anything but a boolean
    // (undefined: not given) fails and leaves `on` false.
    if unsafe { sys::napi_get_value_bool(env, durable, &mut on) } == sys::Status::napi_ok {
        return on;
    }
    // SAFETY: the caller's contract.
    b.config().outbox.mode == OutboxMode::All && !unsafe { absent(env, method) }
}

/// `fire(url, method, headers, body, timeout, deadline, fullResponse, abortId, route,
/// durable, orderingKey, trace)`: `init`'s fields as the facade checked them, all but the
/// URL optional (a call without `init` passes the URL alone).
///
/// # Safety
/// `env` and `args` are this callback's.
unsafe fn read_init(env: sys::napi_env, args: &[sys::napi_value; 12]) -> Result<FireInit> {
    // SAFETY: every value converted below is an argument of this callback, in its scope.
    unsafe {
        Ok(FireInit {
            method: Option::from_napi_value(env, args[1])?,
            headers: Option::from_napi_value(env, args[2])?,
            body: Option::from_napi_value(env, args[3])?,
            timeout: Option::from_napi_value(env, args[4])?,
            deadline: Option::from_napi_value(env, args[5])?,
            full_response: Option::from_napi_value(env, args[6])?,
            abort_id: Option::from_napi_value(env, args[7])?,
            route: Option::from_napi_value(env, args[8])?,
            durable: Option::from_napi_value(env, args[9])?,
            ordering_key: Option::from_napi_value(env, args[10])?,
            trace: Option::from_napi_value(env, args[11])?,
        })
    }
}

unsafe extern "C" fn fire_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let call = |bound: &Bound, args: [sys::napi_value; 12]| {
        catch_unwind(AssertUnwindSafe(|| -> Result<sys::napi_value> {
            // SAFETY: argument values of this callback, in its scope.
            let may_queue = unsafe { may_queue(env, args[1], args[9], &bound.breaker) };
            // A routed call with `circuitPerRoute` is its route's circuit's to answer.
            // SAFETY: as above.
            let routed = bound.breaker.routes_circuits() && !unsafe { absent(env, args[8]) };
            // Open circuit, nothing cached: null (the facade resolves the fallback) before
            // anything is converted; the same answer fire() gives, for less.
            if !may_queue && !routed && fire::try_reject(&bound.breaker, &bound.handle) {
                // SAFETY: env of this callback.
                return unsafe { Null::to_napi_value(env, Null) };
            }
            // SAFETY: as above.
            let url = unsafe { String::from_napi_value(env, args[0]) }?;
            // SAFETY: as above.
            let init = unsafe { read_init(env, &args) }?;
            let e = Env::from_raw(env);
            let out: FireResult<'_> = fire::fire(&e, &bound.breaker, &bound.handle, url, init)?;
            // SAFETY: env of this callback; `out` holds values of this scope.
            unsafe { FireResult::to_napi_value(env, out) }
        }))
    };
    // SAFETY: napi's own callback arguments.
    let result = unsafe { with_args::<Bound, 12, _>(env, info, call) };
    match result {
        None => throw(env, Code::Internal, "fire: napi_get_cb_info failed"),
        Some(Ok(Ok(v))) => v,
        // napi-rs errors here are argument errors (a non-string URL, a field of the wrong
        // type): the facade maps their Status code to EINVALID.
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
