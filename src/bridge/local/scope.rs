//! Settling a turn's completions as an I/O callback would: in a callback scope, whose close
//! runs the microtasks (and nextTicks) the settling queued.

use std::ptr;

use napi::sys;

use super::super::completion::{self, Completion};

/// An object and async context for the callback scopes `settle` opens. Called from a libuv
/// callback (`dispatch::flush`), where no handle scope is open: it opens its own.
pub(super) fn async_context(
    env: sys::napi_env,
) -> Option<(sys::napi_ref, sys::napi_async_context)> {
    let mut handles = ptr::null_mut();
    // SAFETY: JS thread, live env, out-pointer to a local.
    if unsafe { sys::napi_open_handle_scope(env, &mut handles) } != sys::Status::napi_ok {
        return None;
    }
    let made = async_context_in_scope(env);
    // SAFETY: the scope opened above, closed once; the reference outlives it.
    unsafe { sys::napi_close_handle_scope(env, handles) };
    made
}

fn async_context_in_scope(env: sys::napi_env) -> Option<(sys::napi_ref, sys::napi_async_context)> {
    let ok = |s| s == sys::Status::napi_ok;
    let mut obj = ptr::null_mut();
    let mut name = ptr::null_mut();
    let mut resource = ptr::null_mut();
    let mut context = ptr::null_mut();
    let label = "dnastore-breaker local call";
    // SAFETY: JS thread, live env, out-pointers to locals; `label` outlives the call and its
    // length is explicit.
    unsafe {
        if !ok(sys::napi_create_object(env, &mut obj))
            || !ok(sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            ))
            || !ok(sys::napi_create_reference(env, obj, 1, &mut resource))
            || !ok(sys::napi_async_init(env, obj, name, &mut context))
        {
            return None;
        }
    }
    Some((resource, context))
}

/// # Safety
/// On the JS thread of `env`, alive; `resource` and `context` were made for it by
/// `async_context`.
pub(super) unsafe fn settle(
    env: sys::napi_env,
    resource: sys::napi_ref,
    context: sys::napi_async_context,
    done: Vec<Completion>,
) {
    let mut handles = ptr::null_mut();
    let mut scope = ptr::null_mut();
    let mut obj = ptr::null_mut();
    // SAFETY: the caller's contract; the scopes are opened and closed in order, here.
    unsafe {
        if sys::napi_open_handle_scope(env, &mut handles) != sys::Status::napi_ok {
            return;
        }
        sys::napi_get_reference_value(env, resource, &mut obj);
        let scoped =
            sys::napi_open_callback_scope(env, obj, context, &mut scope) == sys::Status::napi_ok;
        completion::settle(env, done);
        // Closing the callback scope runs the microtasks (and nextTicks) the settling
        // queued, as after any I/O callback.
        if scoped {
            sys::napi_close_callback_scope(env, scope);
        }
        sys::napi_close_handle_scope(env, handles);
    }
}
