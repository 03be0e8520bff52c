//! Decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
//! `next = min(cap, uniform(base, prev * 3))`.
//!
//! Why decorrelated rather than full jitter: both spread clients apart, but full jitter
//! can draw a near-zero delay on every attempt, which during an outage means a
//! retry immediately after a failure. Decorrelated jitter never goes below `base` and still
//! grows roughly exponentially, so every retry waits at least `base` and the total work
//! is close to full jitter's.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// `base <= cap` is guaranteed by config validation; a reversed pair is clamped, never a panic.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
        }
    }

    /// The delay before the next attempt, given the previous delay (None before the first retry).
    pub fn next(&self, prev: Option<Duration>, rng: &dyn Rng) -> Duration {
        let base = self.base.as_secs_f64();
        let hi = prev.map_or(base * 3.0, |p| (p.as_secs_f64() * 3.0).max(base));
        let d = base + rng.next_f64() * (hi - base);
        Duration::from_secs_f64(d.min(self.cap.as_secs_f64())).clamp(self.base, self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_stay_within_base_and_cap(base_ms in 1u64..10_000, extra in 0u64..100_000, seed: u64, steps in 1usize..20) {
            let b = Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(base_ms + extra));
            let rng = SplitMix64::seeded(seed);
            let mut prev = None;
            for _ in 0..steps {
                let d = b.next(prev, &rng);
                prop_assert!(d >= Duration::from_millis(base_ms));
                prop_assert!(d <= Duration::from_millis(base_ms + extra));
                prev = Some(d);
            }
        }

        #[test]
        fn a_delay_never_exceeds_three_times_the_previous(base_ms in 1u64..1000, seed: u64) {
            let b = Backoff::new(Duration::from_millis(base_ms), Duration::from_secs(3600));
            let rng = SplitMix64::seeded(seed);
            let mut prev = b.next(None, &rng);
            for _ in 0..10 {
                let d = b.next(Some(prev), &rng);
                prop_assert!(d.as_secs_f64() <= prev.as_secs_f64() * 3.0 + 1e-6);
                prev = d;
            }
        }
    }

    #[test]
    fn delays_grow_on_average() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        let rng = SplitMix64::seeded(42);
        let (mut first, mut fourth) = (0.0, 0.0);
        for _ in 0..1000 {
            let d1 = b.next(None, &rng);
            let d2 = b.next(Some(d1), &rng);
            let d3 = b.next(Some(d2), &rng);
            let d4 = b.next(Some(d3), &rng);
            first += d1.as_secs_f64();
            fourth += d4.as_secs_f64();
        }
        assert!(fourth > first * 2.0, "{first} {fourth}");
    }
}
