//! Retry budget (Finagle's RetryBudget, Envoy's retry_budget): retries may add at most
//! `percent` % of the calls of the last 10 seconds, plus `min_per_sec` per second.
//!
//! Why: with N attempts per call, a full outage multiplies the load on the upstream by N
//! exactly when it can least take it (a retry storm), and every layer that retries
//! multiplies again. A budget keeps retries a small fraction of real traffic, so a blip
//! is still retried but an outage is not amplified. Lock-free: two atomic windows.

use std::time::Duration;

use crate::window::AtomicWindow;

const TTL: Duration = Duration::from_secs(10);
const SLOTS: u32 = 10;

#[derive(Debug)]
pub struct RetryBudget {
    percent: u64,
    min_per_sec: u64,
    deposits: AtomicWindow,
    withdrawals: AtomicWindow,
}

impl RetryBudget {
    pub fn new(percent: u32, min_per_sec: u32) -> Self {
        Self {
            percent: percent as u64,
            min_per_sec: min_per_sec as u64,
            deposits: AtomicWindow::new(TTL, SLOTS),
            withdrawals: AtomicWindow::new(TTL, SLOTS),
        }
    }

    /// Every logical call deposits once.
    pub fn deposit(&self, now: Duration) {
        self.deposits.add(now, 1);
    }

    /// Takes one retry from the budget, or returns false when it is spent.
    pub fn try_withdraw(&self, now: Duration) -> bool {
        let allowed =
            self.min_per_sec * TTL.as_secs() + self.deposits.total(now) * self.percent / 100;
        if self.withdrawals.total(now) >= allowed {
            return false;
        }
        self.withdrawals.add(now, 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_retries_at_the_fraction_plus_minimum() {
        let b = RetryBudget::new(20, 1);
        let now = Duration::from_secs(100);
        let mut granted = 0;
        for _ in 0..1000 {
            b.deposit(now);
            if b.try_withdraw(now) {
                granted += 1;
            }
        }
        // 20 % of 1000 calls + 1/s over the 10 s window.
        assert_eq!(granted, 200 + 10);
    }

    #[test]
    fn budget_refills_as_the_window_moves() {
        let b = RetryBudget::new(0, 1);
        let t0 = Duration::from_secs(100);
        let granted = (0..50).filter(|_| b.try_withdraw(t0)).count();
        assert_eq!(granted, 10);
        assert!(!b.try_withdraw(t0));
        assert!(b.try_withdraw(t0 + TTL));
    }
}
