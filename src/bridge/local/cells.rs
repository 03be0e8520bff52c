//! One JS thread's driver state (`Cells`) and accessors that read like one thread-local
//! per field (`IN_TURN.get()`, `DONE.with(..)`).

use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::task::Waker;

use super::super::completion::Completion;
use super::State;

/// This thread's driver state, on the heap: thread-locals live in the addon's static TLS
/// block, of which a dlopened library gets little (glibc's surplus, ~1.6 KB, shared with
/// mimalloc, tokio and napi-rs). Inline, these cells and the runtime took it past the limit
/// ("cannot allocate memory in static TLS block"); boxed they cost one pointer.
#[derive(Default)]
pub(super) struct Cells {
    local: RefCell<State>,
    epfd: Cell<c_int>,
    in_turn: Cell<bool>,
    idle: Cell<bool>,
    rounds: Cell<u32>,
    turn_start: Cell<Option<std::time::Instant>>,
    /// The turn ended with events still waiting (rounds or time used up).
    cut: Cell<bool>,
    turn_waker: RefCell<Option<Waker>>,
    /// Local calls in flight, and timer ticks since the last one started.
    calls: Cell<usize>,
    ticks: Cell<u32>,
    done: RefCell<Vec<Completion>>,
    /// An event was queued for JS during the current turn.
    events: Cell<bool>,
    /// The turn has something to take at once: libuv reported the descriptor readable, or
    /// the clock's tick came (timers may be due). Not set for a turn that starts a call.
    eager: Cell<bool>,
    /// Test counters, indexed by `Stat`.
    stats: Cell<[u64; 4]>,
    /// The current turn starts a call.
    starting: Cell<bool>,
}

thread_local! {
    static CELLS: Box<Cells> = Box::default();
}

/// `NAME.with(..)`, `NAME.try_with(..)` (and `get`/`set`/`replace` for `Cell`s) on one field
/// of `CELLS`, so the code reads as with one thread-local per field.
macro_rules! fields {
    ($($name:ident: $field:ident: $t:ty;)*) => {$(
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub(super) struct $name;
        impl $name {
            #[allow(dead_code)]
            pub(super) fn with<R>(&self, f: impl FnOnce(&$t) -> R) -> R {
                CELLS.with(|c| f(&c.$field))
            }
            #[allow(dead_code)]
            pub(super) fn try_with<R>(&self, f: impl FnOnce(&$t) -> R) -> Result<R, std::thread::AccessError> {
                CELLS.try_with(|c| f(&c.$field))
            }
        }
    )*};
}
macro_rules! cells {
    ($($name:ident: $field:ident: $t:ty;)*) => {
        fields!($($name: $field: Cell<$t>;)*);
        $(impl $name {
            #[allow(dead_code)]
            pub(super) fn get(&self) -> $t {
                CELLS.with(|c| c.$field.get())
            }
            #[allow(dead_code)]
            pub(super) fn set(&self, v: $t) {
                CELLS.with(|c| c.$field.set(v))
            }
            #[allow(dead_code)]
            pub(super) fn replace(&self, v: $t) -> $t {
                CELLS.with(|c| c.$field.replace(v))
            }
        })*
    };
}

fields! {
    LOCAL: local: RefCell<State>;
    TURN_WAKER: turn_waker: RefCell<Option<Waker>>;
    DONE: done: RefCell<Vec<Completion>>;
}
cells! {
    EPFD: epfd: c_int;
    IN_TURN: in_turn: bool;
    IDLE: idle: bool;
    ROUNDS: rounds: u32;
    TURN_START: turn_start: Option<std::time::Instant>;
    CUT: cut: bool;
    CALLS: calls: usize;
    TICKS: ticks: u32;
    EVENTS: events: bool;
    EAGER: eager: bool;
    STATS: stats: [u64; 4];
    STARTING: starting: bool;
}
