//! The part of libuv's API (uv.h) that node exports to addons and this binding uses, and
//! the allocation of its opaque handles (`dispatch`'s check and prepare handles, `local`'s
//! poll and timer handles).

use std::ffi::{c_int, c_void};
use std::ptr;

use napi::sys;

/// `uv_handle_type` values (uv.h), as far as used here.
pub const CHECK: c_int = 2;
pub const POLL: c_int = 8;
pub const PREPARE: c_int = 9;
pub const TIMER: c_int = 13;
/// `uv_poll_event`: readable.
pub const READABLE: c_int = 1;

pub type Callback = unsafe extern "C" fn(*mut c_void);
pub type PollCallback = unsafe extern "C" fn(*mut c_void, c_int, c_int);

extern "C" {
    pub fn uv_handle_size(kind: c_int) -> usize;
    pub fn uv_prepare_init(lp: *mut sys::uv_loop_s, h: *mut c_void) -> c_int;
    pub fn uv_prepare_start(h: *mut c_void, cb: Callback) -> c_int;
    pub fn uv_prepare_stop(h: *mut c_void) -> c_int;
    pub fn uv_check_init(lp: *mut sys::uv_loop_s, h: *mut c_void) -> c_int;
    pub fn uv_check_start(h: *mut c_void, cb: Callback) -> c_int;
    pub fn uv_check_stop(h: *mut c_void) -> c_int;
    pub fn uv_poll_init(lp: *mut sys::uv_loop_s, h: *mut c_void, fd: c_int) -> c_int;
    pub fn uv_poll_start(h: *mut c_void, events: c_int, cb: PollCallback) -> c_int;
    pub fn uv_timer_init(lp: *mut sys::uv_loop_s, h: *mut c_void) -> c_int;
    pub fn uv_timer_start(h: *mut c_void, cb: Callback, timeout: u64, repeat: u64) -> c_int;
    pub fn uv_timer_stop(h: *mut c_void) -> c_int;
    pub fn uv_unref(h: *mut c_void);
    pub fn uv_close(h: *mut c_void, cb: Option<Callback>);
}

/// Words in a handle allocation: enough for any kind used here, so one `free` fits all.
fn handle_words() -> usize {
    // SAFETY: a pure query of libuv's type sizes.
    let bytes = unsafe {
        [CHECK, POLL, PREPARE, TIMER]
            .into_iter()
            .map(|k| uv_handle_size(k))
            .max()
            .unwrap_or(0)
    };
    bytes.div_ceil(8)
}

/// A zeroed, 8-byte aligned allocation for a libuv handle, freed by `free` (as the close
/// callback, or directly if the handle was never initialised).
pub fn alloc_handle() -> *mut c_void {
    Box::into_raw(vec![0u64; handle_words()].into_boxed_slice()).cast()
}

/// Frees an `alloc_handle` allocation.
///
/// # Safety
/// `h` came from `alloc_handle` and libuv no longer uses it (this is its close callback, or
/// it was never initialised); called once per allocation.
pub unsafe extern "C" fn free_handle(h: *mut c_void) {
    let words = handle_words();
    // SAFETY: the caller's contract: a boxed slice of `handle_words()` words, freed once.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(h.cast::<u64>(), words)) });
}
