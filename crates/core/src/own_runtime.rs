//! Threads that drive a tokio runtime of their own: the binding's JS threads, which run
//! their lone calls themselves (its `local` module). Code polled there adapts in two ways:
//! - connections: hyper runs each connection as a task on the runtime that opened it, so
//!   such a thread keeps a pool of its own (`http::ClientSlot`); a connection of the I/O
//!   runtime would have its socket I/O done on the I/O thread, a wake-up each way;
//! - CPU-heavy steps: that thread also runs the application's JavaScript, so the JSON check
//!   of a body moves to the blocking pool at a smaller size than on the I/O thread
//!   (`breaker::attempts`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

thread_local! {
    static OWN: Cell<bool> = const { Cell::new(false) };
    /// Tasks waiting for the host's loop to have run (`yield_to_host`).
    static YIELDED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// From now on, calls polled on this thread use its own connections and checks.
pub fn mark_this_thread() {
    OWN.with(|o| o.set(true));
}

/// Whether this thread drives a runtime of its own (`mark_this_thread`).
pub fn this_thread() -> bool {
    OWN.try_with(Cell::get).unwrap_or(false)
}

/// On a thread that drives its own runtime: lets the host (the JS thread's event loop) run
/// before the caller continues. The driver ends its current turn once every task is parked
/// and wakes the yielded ones at the next (`take_yielded`). Elsewhere it returns at once.
/// Long steps (reading a large body that arrives faster than it is read) call it so they
/// never hold the JS thread for long in one go.
pub async fn yield_to_host() {
    if this_thread() {
        YieldToHost(false).await;
    }
}

struct YieldToHost(bool);

impl Future for YieldToHost {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        YIELDED.with(|y| y.borrow_mut().push(cx.waker().clone()));
        Poll::Pending
    }
}

/// Whether a task of this thread waits for the host (`yield_to_host`).
pub fn has_yielded() -> bool {
    YIELDED
        .try_with(|y| !y.borrow().is_empty())
        .unwrap_or(false)
}

/// The tasks waiting for the host, for the driver to wake when its next turn starts.
pub fn take_yielded() -> Vec<Waker> {
    YIELDED
        .try_with(|y| std::mem::take(&mut *y.borrow_mut()))
        .unwrap_or_default()
}

/// Whether one breaker's lone calls should run on the caller's own runtime: only while they
/// are quick. The driver serves tokio's timers with a tick of the host's loop (1 ms, then
/// 4 ms) for as long as such a call is in flight, and each tick wakes the thread: a 40 ms
/// call paid ~20 wake-ups, ~1.3 ms of CPU against ~0.5 ms through the I/O thread; the two
/// cost the same at ~2 ms (`npm run bench:slow`, bench/README.md). So the breaker keeps a
/// moving average of how long its calls took there (a quarter of each new one, each counted
/// at most [`LoneRoute::CAP`]: one slow call, a cold connection or a timeout, does not move
/// it past [`LoneRoute::SLOW`], two in a row do, and a long one is soon forgotten) and sends
/// lone calls to the I/O thread while it is at `SLOW` or more; one call in
/// [`LoneRoute::PROBE_EVERY`] still goes, to notice the upstream is quick again.
#[derive(Debug, Default)]
pub struct LoneRoute {
    average_us: AtomicU32,
    asked: AtomicU32,
}

impl LoneRoute {
    pub const SLOW: Duration = Duration::from_millis(2);
    pub const CAP: Duration = Duration::from_millis(6);
    pub const PROBE_EVERY: u32 = 32;

    /// Whether the next lone call may run on the caller's runtime.
    pub fn quick(&self) -> bool {
        if self.average_us.load(Ordering::Relaxed) < Self::SLOW.as_micros() as u32 {
            return true;
        }
        self.asked.fetch_add(1, Ordering::Relaxed) % Self::PROBE_EVERY == Self::PROBE_EVERY - 1
    }

    /// How long a call that ran on the caller's runtime took, from fire() to its result.
    pub fn observe(&self, took: Duration) {
        let took = took.min(Self::CAP).as_micros() as u32;
        // Racing updates from two threads may lose one sample: an estimate, not a count.
        let old = self.average_us.load(Ordering::Relaxed);
        self.average_us
            .store(old - old / 4 + took / 4, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_route_leaves_a_slow_upstream_to_the_io_thread_and_comes_back_when_quick() {
        let quick = Duration::from_micros(150);
        let r = LoneRoute::default();
        assert!(r.quick(), "starts on the caller's runtime");
        r.observe(Duration::from_millis(5));
        assert!(r.quick(), "a slow first call (a cold connection) keeps it");
        for _ in 0..20 {
            r.observe(quick);
        }
        r.observe(Duration::from_millis(40));
        assert!(r.quick(), "one slow call among quick ones keeps it");
        // A 40 ms upstream: off from its first call, but for one probe in PROBE_EVERY.
        for _ in 0..10 {
            r.observe(Duration::from_millis(40));
        }
        let runs = (0..LoneRoute::PROBE_EVERY * 4)
            .filter(|_| r.quick())
            .count();
        assert_eq!(runs, 4, "probes only");
        // Quick again: the probes that run bring it back, each 40 ms call having counted
        // as CAP only.
        let (mut probes, mut asks) = (0, 0);
        while r.average_us.load(Ordering::Relaxed) >= LoneRoute::SLOW.as_micros() as u32 {
            asks += 1;
            assert!(asks < 20 * LoneRoute::PROBE_EVERY, "never came back");
            if r.quick() {
                probes += 1;
                r.observe(quick);
            }
        }
        assert!(probes <= 5, "{probes} probes to come back");
        assert!((0..LoneRoute::PROBE_EVERY).all(|_| r.quick()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn yield_to_host_parks_until_woken_on_an_own_runtime_thread_only() {
        // Elsewhere: returns at once.
        yield_to_host().await;
        assert!(!has_yielded());
        mark_this_thread();
        let task = tokio::spawn(yield_to_host());
        tokio::task::yield_now().await;
        assert!(has_yielded(), "waits for the host");
        assert!(!task.is_finished());
        for w in take_yielded() {
            w.wake();
        }
        task.await.unwrap();
        assert!(!has_yielded());
    }
}
