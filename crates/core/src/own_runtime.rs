//! Threads that drive a tokio runtime of their own: the binding's JS threads, which run
//! their lone calls themselves (its `local` module). Code polled there adapts in two ways:
//! - connections: hyper runs each connection as a task on the runtime that opened it, so
//!   such a thread keeps a pool of its own (`tls::ClientSlot`); a connection of the I/O
//!   runtime would have its socket I/O done on the I/O thread, a wake-up each way;
//! - CPU-heavy steps: that thread also runs the application's JavaScript, so the JSON check
//!   of a body moves to the blocking pool at a smaller size than on the I/O thread
//!   (`breaker::attempts`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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

#[cfg(test)]
mod tests {
    use super::*;

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
