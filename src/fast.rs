//! The per-request calls, `fire(url)` (which short-circuits an open circuit first) and
//! `tryReject()` (the same check, for calls with an `init`), as hand-written napi callbacks
//! bound to one breaker.
//!
//! Why: a `#[napi]` class method pays, per call, for napi-rs's native-borrow scope (a
//! HashMap insert and remove), a type-tag check on `this`, and a type check per optional
//! argument. On the open circuit that glue was most of the native time per call (bench
//! profile). These functions carry the breaker as their napi `data` pointer instead, so a
//! call is one `napi_get_cb_info` plus the work. Behaviour is shared with the class
//! methods (`breaker::fire`, `breaker::try_reject`); only argument plumbing lives here.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use dnastore_core::{Breaker, Code};
use napi::bindgen_prelude::*;
use napi::sys;

use crate::breaker::{self, FireArgs, FireResult};

/// What each function is bound to; freed when the function object is collected.
struct Bound {
    breaker: Arc<Breaker>,
    closed: Arc<AtomicBool>,
}

/// `{ tryReject, fire }` bound to `b`.
pub fn functions<'env>(
    env: &'env Env,
    b: &Arc<Breaker>,
    closed: &Arc<AtomicBool>,
) -> Result<Object<'env>> {
    let mut obj = Object::new(env)?;
    obj.set_named_property(
        "tryReject",
        function(env, "tryReject", try_reject_cb, b, closed)?,
    )?;
    obj.set_named_property("fire", function(env, "fire", fire_cb, b, closed)?)?;
    Ok(obj)
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

fn function<'env>(
    env: &'env Env,
    name: &str,
    cb: Callback,
    b: &Arc<Breaker>,
    closed: &Arc<AtomicBool>,
) -> Result<Unknown<'env>> {
    let raw = env.raw();
    let data = Box::into_raw(Box::new(Bound {
        breaker: b.clone(),
        closed: closed.clone(),
    }));
    let mut f = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_function(
            raw,
            name.as_ptr().cast(),
            name.len() as isize,
            Some(cb),
            data.cast(),
            &mut f,
        )
    };
    if status != sys::Status::napi_ok {
        drop(unsafe { Box::from_raw(data) });
        return Err(Error::new(
            Status::GenericFailure,
            "napi_create_function failed",
        ));
    }
    let status = unsafe {
        sys::napi_add_finalizer(
            raw,
            f,
            data.cast(),
            Some(release),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok {
        drop(unsafe { Box::from_raw(data) });
        return Err(Error::new(
            Status::GenericFailure,
            "napi_add_finalizer failed",
        ));
    }
    Ok(unsafe { Unknown::from_raw_unchecked(raw, f) })
}

unsafe extern "C" fn release(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(unsafe { Box::from_raw(data.cast::<Bound>()) });
}

/// The bound breaker and up to `N` arguments (missing ones are `undefined`).
unsafe fn args<'a, const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<(&'a Bound, [sys::napi_value; N])> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let mut data = ptr::null_mut();
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        )
    };
    (status == sys::Status::napi_ok && !data.is_null())
        .then(|| (unsafe { &*data.cast::<Bound>() }, argv))
}

fn boolean(env: sys::napi_env, v: bool) -> sys::napi_value {
    let mut out = ptr::null_mut();
    unsafe { sys::napi_get_boolean(env, v, &mut out) };
    out
}

/// Throws a JS error with our stable code; returns what a throwing callback returns.
fn throw(env: sys::napi_env, code: Code, message: &str) -> sys::napi_value {
    let _ = crate::throw::throw(&Env::from_raw(env), code, message);
    ptr::null_mut()
}

unsafe extern "C" fn try_reject_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let Some((bound, _)) = (unsafe { args::<0>(env, info) }) else {
        return throw(env, Code::Internal, "tryReject: napi_get_cb_info failed");
    };
    // A panic here would be a bug; the call then takes the full path, which reports it.
    let rejected = catch_unwind(AssertUnwindSafe(|| {
        breaker::try_reject(&bound.breaker, &bound.closed)
    }))
    .unwrap_or(false);
    boolean(env, rejected)
}

unsafe extern "C" fn fire_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let Some((bound, [url])) = (unsafe { args::<1>(env, info) }) else {
        return throw(env, Code::Internal, "fire: napi_get_cb_info failed");
    };
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<sys::napi_value> {
        // Open circuit, nothing cached: null (the facade resolves the fallback) before the
        // URL is converted; the same answer fire() gives, for less.
        if breaker::try_reject(&bound.breaker, &bound.closed) {
            return unsafe { Null::to_napi_value(env, Null) };
        }
        let url = unsafe { String::from_napi_value(env, url) }?;
        let e = Env::from_raw(env);
        let out: FireResult<'_> =
            breaker::fire(&e, &bound.breaker, &bound.closed, FireArgs::url_only(url))?;
        unsafe { FireResult::to_napi_value(env, out) }
    }));
    match result {
        Ok(Ok(v)) => v,
        // napi-rs errors here are argument errors (a non-string URL): the facade maps
        // their Status code to EINVALID, as for the class method.
        Ok(Err(e)) if e.status == Status::PendingException => ptr::null_mut(),
        Ok(Err(e)) => {
            unsafe { JsError::from(e).throw_into(env) };
            ptr::null_mut()
        }
        Err(_) => throw(
            env,
            Code::Internal,
            "internal error in dnastore-breaker (a bug; please report it)",
        ),
    }
}
