//! Lone calls do their I/O on the JS thread: a current-thread tokio runtime per JS thread,
//! driven by that thread's libuv loop.
//!
//! Why: with one call in flight (a request handler awaiting one DNAStore call, the common
//! case), handing the call to the I/O thread costs two sleeps and wake-ups of that thread
//! per call (hand-over, then the response) plus a wake-up of the JS thread for the result:
//! on the bench machine that was ~40 % of the call's CPU, against a pure-JS client (undici)
//! that writes and reads its socket from the JS thread and sleeps once (bench/README.md,
//! issue 18). Here a call alone in its event-loop turn, with nothing else of this thread
//! pending, runs on this thread's own runtime: the batch hand-over (`dispatch::flush`)
//! starts it and writes the request, the loop's poll phase wakes once for the response, and
//! the promise settles in that same callback. Other calls still go to the I/O thread, which
//! is what scales with many in flight.
//!
//! How the runtime is driven without ever blocking the JS thread:
//! - Its epoll descriptor is watched by a libuv poll handle: any I/O event, or a wake-up of
//!   one of its tasks from another thread (the runtime then writes its eventfd), makes the
//!   loop call `turn`. Tokio does not expose that descriptor: `driver` finds it with a probe.
//!   Where it cannot (not Linux), this thread has no local runtime and every call goes to
//!   the I/O thread.
//! - `turn` is `block_on` of a future that completes when the scheduler is about to park
//!   (its `on_thread_park` hook) and the epoll has no events waiting: every task that can
//!   progress has. The hook always wakes that future, so tokio polls its driver with a zero
//!   timeout instead of sleeping: the pattern tokio supports for runtimes driven by short
//!   `block_on` calls. tokio 1.50.0 broke it (its scheduler then skipped the driver
//!   altogether, so timers and I/O never advanced: tokio-rs/tokio#8212), #8222 fixed it
//!   (1.51.4, 1.52.4, 1.53.0 on), and the workspace pins tokio's minor version for it
//!   (docs/performance.md, "Upgrading tokio"). A bounded number of rounds per turn keeps a turn short even
//!   if events keep coming.
//! - Timers (attempt timeouts, backoff sleeps, deadlines) live in tokio's timer wheel,
//!   whose next deadline tokio does not expose: while local calls are in flight a libuv
//!   timer turns the runtime every 1 ms for the first 16 ms of quiet, then every 4 ms, and
//!   such a turn polls the driver first (its timers are due, not its descriptor readable).
//!   A timer therefore fires at most one tick later than on the I/O thread, and a call that
//!   waits long costs ~250 cheap turns a second while it waits.
//!
//! Nothing runs JS inside a turn: completions are collected and settled after it, in a
//! callback scope (microtasks run as after any I/O callback), or through the completion
//! queue when the turn ran in the prepare phase or queued events (see `Deliver`).

mod cells;
mod driver;
mod scope;

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr;
use std::task::Poll;

use napi::sys;
use tokio::runtime::{Builder, Runtime};

use super::completion::{self, Completion};
use super::uv::{
    alloc_handle, free_handle, uv_close, uv_poll_init, uv_poll_start, uv_timer_init,
    uv_timer_start, uv_timer_stop, uv_unref, READABLE,
};
use cells::{
    CALLS, CUT, DONE, EAGER, EPFD, EVENTS, IDLE, IN_TURN, LOCAL, ROUNDS, STARTING, STATS, TICKS,
    TURN_START, TURN_WAKER,
};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Turns between two timer periods: 16 x 1 ms, then every `SLOW_TICK_MS`.
const FAST_TICKS: u32 = 16;
const FAST_TICK_MS: u64 = 1;
const SLOW_TICK_MS: u64 = 4;
/// Park hooks one turn goes through at most (each one a zero-timeout poll of the driver),
/// and the time after which it ends at the next one: a large body arriving fast is read over
/// several turns, with the rest of the loop (other callbacks, the application's JavaScript)
/// in between, so a lone call never holds the JS thread much longer than this at a time.
const MAX_ROUNDS: u32 = 16;
const TURN_BUDGET: std::time::Duration = std::time::Duration::from_micros(500);
/// Period of the timer anchor (see `anchor`): shorter than any call's usual timeout (3 s by
/// default), long enough that re-arming it (one wake-up write each time) costs nothing.
const ANCHOR: std::time::Duration = std::time::Duration::from_millis(100);

/// One JS thread's runtime and the libuv handles that drive it.
pub(super) struct Local {
    rt: Runtime,
    env: sys::napi_env,
    poll: *mut c_void,
    timer: *mut c_void,
    /// For callback scopes: settling outside a JS call then runs microtasks like any I/O
    /// callback does.
    resource: sys::napi_ref,
    context: sys::napi_async_context,
}

#[derive(Default)]
pub(super) enum State {
    #[default]
    Untried,
    /// No local runtime on this thread (see the module docs): the I/O thread takes all.
    Off,
    On(Box<Local>),
}

/// Whether a call fired now can run on this thread's runtime (creating it on first use).
pub(super) fn usable(env: sys::napi_env) -> bool {
    if IN_TURN.get() {
        return false;
    }
    LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            if matches!(*l, State::Untried) {
                *l = match init(env) {
                    Some(local) => State::On(Box::new(local)),
                    None => State::Off,
                };
            }
            matches!(*l, State::On(_))
        })
        .unwrap_or(false)
}

/// Whether the caller is a task of this thread's runtime, polled in a turn.
pub(super) fn in_turn() -> bool {
    IN_TURN.try_with(Cell::get).unwrap_or(false)
}

/// Runs `task` on this thread's runtime, starting it now, from a libuv check or prepare
/// callback of this thread's loop (`in_prepare`: the latter). Only after `usable` returned
/// true.
pub(super) fn spawn(task: impl Future<Output = ()> + Send + 'static, in_prepare: bool) {
    count(Stat::Calls);
    TICKS.set(0);
    let was = CALLS.get();
    CALLS.set(was + 1);
    if was == 0 {
        with_local(|l| {
            // SAFETY: this thread's initialised timer, on its own loop.
            unsafe { uv_timer_start(l.timer, on_tick, FAST_TICK_MS, FAST_TICK_MS) };
        });
    }
    turn(
        Some(Box::pin(async move {
            // Decremented however the task ends: run to completion, or dropped with the
            // runtime when the environment goes away.
            let _done = CallDone;
            task.await;
        })),
        if in_prepare {
            Deliver::Post
        } else {
            Deliver::Scope
        },
        // Not eager: the call's timeout no longer wakes the driver (`anchor`), so the
        // first round checks readiness like any other; most often the request is written
        // and nothing waits yet, and the turn ends after one driver poll.
        false,
    );
}

/// Keeps a timer in this runtime's wheel that is due before any call's timeout, so that
/// registering a call's timeout does not wake the driver.
///
/// Why: tokio's timer wakes its I/O driver (a `write` to its eventfd) whenever a new timer
/// comes due before the earliest one it knew of. That is for a driver asleep in epoll; this
/// one never sleeps (every poll of it has a zero timeout, and the libuv tick turns it while
/// calls are in flight), so the write only cost a system call, and the driver poll that
/// took the wake-up another, on every lone call (`npm run bench:syscalls`, bench/README.md).
/// With this timer due within `ANCHOR`, a timeout of `ANCHOR` or more is never the earliest.
/// Shorter ones still wake the driver, which is only wasted work, never a missed timer.
async fn anchor() {
    loop {
        tokio::time::sleep(ANCHOR).await;
    }
}

/// A local call's outcome, settled when the current turn ends.
pub(super) fn finished(c: Completion) {
    if !STARTING.get() && ROUNDS.get() == 0 {
        count(Stat::LateWakes);
    }
    DONE.with(|d| d.borrow_mut().push(c));
}

/// A breaker event was queued for this thread's listeners (from any thread). Inside a turn
/// on this thread, the turn's completions then settle through the completion queue, behind
/// the event: a listener hears of a call's retries, fallback or state change before the
/// caller's `await` returns, as with calls on the I/O thread.
pub(super) fn event_queued() {
    if IN_TURN.try_with(Cell::get).unwrap_or(false) {
        EVENTS.set(true);
    }
}

/// What the test counters count (`stats`), since the thread started.
#[derive(Clone, Copy)]
enum Stat {
    /// Calls run on this thread's runtime.
    Calls,
    /// Turns taken.
    Turns,
    /// Rounds (driver polls) of the turns that started a call.
    StartRounds,
    /// Calls that finished before the first driver poll of a turn they did not start: woken
    /// in an earlier turn and left queued.
    LateWakes,
}

fn count(stat: Stat) {
    STATS.with(|s| {
        let mut v = s.get();
        v[stat as usize] += 1;
        s.set(v);
    });
}

/// The test counters, indexed by `Stat`.
pub(super) fn stats() -> [u64; 4] {
    STATS.try_with(Cell::get).unwrap_or_default()
}

struct CallDone;

impl Drop for CallDone {
    fn drop(&mut self) {
        let _ = CALLS.try_with(|c| {
            let n = c.get().saturating_sub(1);
            c.set(n);
            if n == 0 {
                with_local(|l| {
                    // SAFETY: this thread's initialised timer, on its own loop.
                    unsafe { uv_timer_stop(l.timer) };
                });
            }
        });
    }
}

fn with_local(f: impl FnOnce(&Local)) {
    let _ = LOCAL.try_with(|l| {
        if let Ok(l) = l.try_borrow() {
            if let State::On(local) = &*l {
                f(local);
            }
        }
    });
}

/// The scheduler ran out of tasks: end the turn unless events are waiting. Either way wake
/// the turn's future, so tokio polls its driver without blocking.
fn before_park() {
    if !IN_TURN.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let n = ROUNDS.get() + 1;
    ROUNDS.set(n);
    if STARTING.get() {
        count(Stat::StartRounds);
    }
    if dnastore_core::own_runtime::has_yielded() {
        // A task let the loop run first: end the turn, the next wakes it.
        IDLE.set(true);
        CUT.set(true);
    } else if n == 1 && EAGER.get() {
        // The first round of an eager turn goes straight to the driver: it has events to
        // take, as libuv reported the descriptor readable (`on_readable`), or timers may be
        // due (`on_tick`). Not checking saved a `poll` per lone call (`npm run
        // bench:syscalls`, bench/README.md). Turns that start a call check first: with the
        // timer anchor nothing woke the driver, and the request was just written.
    } else if !driver::readable(EPFD.get()) {
        IDLE.set(true);
    } else if n >= MAX_ROUNDS || TURN_START.get().is_some_and(|t| t.elapsed() >= TURN_BUDGET) {
        IDLE.set(true);
        CUT.set(true);
    }
    if let Some(w) = TURN_WAKER.with(|w| w.borrow().clone()) {
        w.wake();
    }
}

fn init(env: sys::napi_env) -> Option<Local> {
    let rt = Builder::new_current_thread()
        .enable_all()
        .thread_name("dnastore-local")
        .on_thread_park(before_park)
        .build()
        .ok()?;
    let epfd = driver::find(&rt)?;
    let mut lp = ptr::null_mut();
    // SAFETY: JS thread, live env, out-pointer to a local.
    if unsafe { sys::napi_get_uv_event_loop(env, &mut lp) } != sys::Status::napi_ok {
        return None;
    }
    let (resource, context) = scope::async_context(env)?;
    let poll = alloc_handle();
    let timer = alloc_handle();
    // SAFETY: `lp` is this JS thread's live loop; the handles are zeroed, 8-byte aligned
    // allocations of `uv_handle_size` bytes, used only on this thread.
    unsafe {
        if uv_poll_init(lp, poll, epfd) != 0 {
            free_handle(poll);
            free_handle(timer);
            return None;
        }
        uv_timer_init(lp, timer);
        uv_poll_start(poll, READABLE, on_readable);
        // Pending promises keep the loop alive (see `completion`), never these handles.
        uv_unref(poll);
        uv_unref(timer);
    }
    // SAFETY: JS thread, live env; `cleanup` takes no data.
    unsafe { sys::napi_add_env_cleanup_hook(env, Some(cleanup), ptr::null_mut()) };
    EPFD.set(epfd);
    drop(rt.spawn(anchor()));
    // Calls polled here keep their own connections and check large bodies off this thread.
    dnastore_core::own_runtime::mark_this_thread();
    Some(Local {
        rt,
        env,
        poll,
        timer,
        resource,
        context,
    })
}

/// The environment is going away: close the handles and drop the runtime with its tasks
/// (each call's future gives back its circuit permit and bulkhead slot when dropped;
/// nobody is left to settle their promises).
unsafe extern "C" fn cleanup(_arg: *mut c_void) {
    let Ok(state) = LOCAL.try_with(|l| std::mem::replace(&mut *l.borrow_mut(), State::Off)) else {
        return;
    };
    if let State::On(local) = state {
        // SAFETY: the env's cleanup hook runs on its JS thread while its loop is alive; the
        // handles were taken out of the thread-local, so they are closed exactly once.
        unsafe {
            uv_close(local.poll, Some(free_handle));
            uv_close(local.timer, Some(free_handle));
        }
        let _ = DONE.try_with(|d| d.borrow_mut().clear());
        // Never blocks: tasks are dropped here, the blocking pool is left to finish.
        let _ = catch_unwind(AssertUnwindSafe(|| local.rt.shutdown_background()));
    }
}

unsafe extern "C" fn on_readable(_h: *mut c_void, _status: c_int, _events: c_int) {
    turn(None, Deliver::Scope, true);
}

unsafe extern "C" fn on_tick(_h: *mut c_void) {
    let ticks = TICKS.get() + 1;
    TICKS.set(ticks);
    if ticks == FAST_TICKS {
        with_local(|l| {
            // SAFETY: this thread's initialised timer, restarted from its own callback.
            unsafe { uv_timer_start(l.timer, on_tick, SLOW_TICK_MS, SLOW_TICK_MS) };
        });
    }
    // Eager: the clock's turns exist for tokio's timers, and a timer due is not an epoll
    // event, so a readiness check first would find nothing and end the turn at once. Its
    // one driver poll would then fire the timer, wake the task waiting on it, and leave
    // that task queued until the next tick: every timeout of a lone call fired one tick
    // late, 6-9 ms where 4 ms is the bound (`inline-io.test.js`). Going to the driver
    // first runs the woken task in this turn. Idle ticks cost one more driver poll each;
    // a lone call is only on this thread while its upstream answers in under ~2 ms
    // (`LoneRoute`), so it sees a tick or two at most.
    turn(None, Deliver::Scope, true);
}

/// How a turn settles the calls it finished.
#[derive(Clone, Copy, PartialEq)]
enum Deliver {
    /// At once, in a callback scope (microtasks run as after any I/O callback).
    Scope,
    /// Through the completion queue, from the loop's next poll phase. For turns run in the
    /// prepare phase: a call settled there may fire the next one, whose hand-over waits for
    /// this loop's check phase, after a poll that would block (a fast upstream answers
    /// within the first turn, and nothing else is left to wake the poll).
    Post,
}

/// Runs every task of this thread's runtime that can progress (spawning `task` first),
/// then settles what finished.
/// `eager`: events or due timers are waiting (see `before_park`).
fn turn(task: Option<Task>, how: Deliver, eager: bool) {
    if IN_TURN.try_with(|t| t.replace(true)).unwrap_or(true) {
        // Never nested: no JS runs inside a turn. Defensive: still start the task.
        if let Some(t) = task {
            with_local(|l| drop(l.rt.spawn(t)));
        }
        return;
    }
    ROUNDS.set(0);
    IDLE.set(false);
    CUT.set(false);
    EVENTS.set(false);
    EAGER.set(eager);
    STARTING.set(task.is_some());
    TURN_START.set(Some(std::time::Instant::now()));
    let mut env = None;
    with_local(|l| {
        env = Some((l.env, l.resource, l.context));
        count(Stat::Turns);
        // A panic in a task is caught by tokio (and the call future's own guard); this
        // guard is for the driver itself: never unwind into libuv or JS.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            l.rt.block_on(async move {
                for w in dnastore_core::own_runtime::take_yielded() {
                    w.wake();
                }
                if let Some(t) = task {
                    drop(tokio::spawn(t));
                }
                std::future::poll_fn(|cx| {
                    if IDLE.replace(false) {
                        Poll::Ready(())
                    } else {
                        TURN_WAKER.with(|w| {
                            let mut w = w.borrow_mut();
                            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                                *w = Some(cx.waker().clone());
                            }
                        });
                        Poll::Pending
                    }
                })
                .await;
            });
        }));
    });
    IN_TURN.set(false);
    if CUT.replace(false) {
        // Events are still waiting: the next turn runs right after the loop's other work
        // (its timers phase), not a tick later.
        // The period goes on as before while calls are in flight; none: just this once.
        let repeat = match CALLS.get() {
            0 => 0,
            _ if TICKS.get() >= FAST_TICKS => SLOW_TICK_MS,
            _ => FAST_TICK_MS,
        };
        with_local(|l| {
            // SAFETY: this thread's initialised timer, on its own loop.
            unsafe { uv_timer_start(l.timer, on_tick, 0, repeat) };
        });
    }
    let done = DONE.with(|d| std::mem::take(&mut *d.borrow_mut()));
    if done.is_empty() {
        return;
    }
    // Behind events queued meanwhile (see `event_queued`), or from the prepare phase.
    if EVENTS.replace(false) || how == Deliver::Post {
        completion::post(done);
        return;
    }
    if let Some((env, resource, context)) = env {
        // SAFETY: this JS thread's live env (the cleanup hook takes the runtime away before
        // the env goes), from a libuv callback of its loop.
        unsafe { scope::settle(env, resource, context, done) };
    }
}
