//! JS functions bound to native data: a raw napi callback with the data as its napi `data`
//! pointer, freed when the function is collected.
//!
//! Why: a `#[napi]` class method pays, per call, for napi-rs's native-borrow scope (a HashMap
//! insert and remove), a type-tag check on `this`, and a type check per optional argument.
//! On the per-call paths (fire() on an open circuit, the wrapped circuit's admit and record)
//! that glue was most of the native time (bench profile); a bound function's call is one
//! `napi_get_cb_info` plus the work.

use std::ffi::c_void;
use std::ptr;

use dnastore_core::Code;
use napi::bindgen_prelude::*;
use napi::sys;

pub(crate) type Callback =
    unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// A JS function calling `cb` with `data` as its napi data pointer, freed with the function.
pub(crate) fn bind<'env, T: 'static>(
    env: &'env Env,
    name: &str,
    cb: Callback,
    data: T,
) -> Result<Unknown<'env>> {
    let raw = env.raw();
    let data = Box::into_raw(Box::new(data));
    let mut f = ptr::null_mut();
    // SAFETY: JS thread, live env; `name` outlives the call and its length is explicit;
    // `data` stays valid until the finalizer added below frees it.
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
        // SAFETY: no function holds `data`: this is its only owner, freed once.
        drop(unsafe { Box::from_raw(data) });
        return Err(Error::new(
            Status::GenericFailure,
            "napi_create_function failed",
        ));
    }
    // SAFETY: `f` is the function just created in this env; the finalizer runs once, when
    // it is collected, and is then the only owner of `data` (a `Box<T>`, as `release::<T>`
    // frees it).
    let status = unsafe {
        sys::napi_add_finalizer(
            raw,
            f,
            data.cast(),
            Some(release::<T>),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the finalizer was not added, so nothing else will free `data`; the
        // function `f` is unreachable garbage that never runs (it was never returned).
        drop(unsafe { Box::from_raw(data) });
        return Err(Error::new(
            Status::GenericFailure,
            "napi_add_finalizer failed",
        ));
    }
    // SAFETY: `f` is a live value created in this env and scope.
    Ok(unsafe { Unknown::from_raw_unchecked(raw, f) })
}

unsafe extern "C" fn release<T>(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the Box<T> made in `bind`; napi runs this finalizer once, when the
    // function object is collected, so no callback can use it afterwards.
    drop(unsafe { Box::from_raw(data.cast::<T>()) });
}

/// Runs `f` with the bound data and up to `N` arguments (missing ones are `undefined`).
/// The borrow of the data cannot escape `f` (a higher-ranked lifetime): it is only valid
/// while the function object, and so its finalizer, cannot run, i.e. during this callback.
///
/// # Safety
/// `env` and `info` must be the arguments napi passed to a callback created by `bind` with
/// data of type `T`.
pub(crate) unsafe fn with_args<T, const N: usize, R>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    f: impl for<'b> FnOnce(&'b T, [sys::napi_value; N]) -> R,
) -> Option<R> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    let mut data = ptr::null_mut();
    // SAFETY: per this function's contract; the out-pointers are locals sized for N.
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
    if status != sys::Status::napi_ok || data.is_null() {
        return None;
    }
    // SAFETY: `data` is the `T` attached by `bind`, alive while the function object is (its
    // finalizer frees it), and the function is running, so it is alive now.
    let bound = unsafe { &*data.cast::<T>() };
    Some(f(bound, argv))
}

pub(crate) fn boolean(env: sys::napi_env, v: bool) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: called from a napi callback with its env; the out-pointer is a local.
    unsafe { sys::napi_get_boolean(env, v, &mut out) };
    out
}

/// Throws a JS error with our stable code; returns what a throwing callback returns.
pub(crate) fn throw(env: sys::napi_env, code: Code, message: &str) -> sys::napi_value {
    let _ = crate::throw::throw(&Env::from_raw(env), code, message);
    ptr::null_mut()
}
