//! `hedgeAfterMs: 'auto'`: the breaker's recent p95 attempt latency, never below [`FLOOR`].
//!
//! Samples go into a lock-free log-linear histogram (8 buckets per power of two: a value is
//! known within 12.5 %, and the delay is the upper edge of its bucket, so a hedge goes a
//! little late rather than early) kept in [`SLOTS`] slots of [`SLOT`] each: the window is the
//! last 4 to 5 seconds, so a shift in DNAStore's latency is followed within that. The p95 is
//! worked out again at most every [`REFRESH`], by whichever call starts first after it
//! (~900 atomic loads); every other call reads one atomic. Until the window holds
//! [`MIN_SAMPLES`] no hedge is sent: a p95 of a handful of calls is noise.
//!
//! What is sampled (as Finagle's BackupRequestFilter does): each copy's own latency when it
//! answers, and when it is cancelled (it lost, or the attempt ran out of time) its age then,
//! a lower bound of its latency. Without the cancelled ones the tail that hedging hides
//! would vanish from the window, the p95 would sink and hedges would go out ever earlier.
//! Failures (a refused connection, a 503) are not sampled: they are usually fast and would
//! pull the delay down.
//!
//! Why a floor of 10 ms: below it a hedge can save a few milliseconds at most and costs a
//! whole request; a sub-10 ms p95 measures the client's own scheduling (its event loop, GC,
//! the I/O thread's queue) as much as DNAStore; and the timer that sends a hedge has 1 ms
//! resolution on the I/O thread and is served by a 1-4 ms tick of the event loop on a JS
//! thread's own runtime (`own_runtime`), so a 2 ms delay would not be one. "The Tail at
//! Scale" (Dean and Barroso) shows a 10 ms hedge delay cutting the 99.9th percentile from
//! 1,800 ms to 74 ms with 2 % more requests.
//!
//! Concurrency: a slot whose time has passed is cleared by the first sample of its new
//! second (a compare-and-swap on its epoch decides who); samples added by other threads in
//! that instant may be lost. The delay is an estimate; a lost sample does not matter.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The lowest delay 'auto' chooses (see the module doc).
pub const FLOOR: Duration = Duration::from_millis(10);
/// Samples the window must hold before 'auto' hedges.
pub const MIN_SAMPLES: u64 = 32;
/// The width of one slot of the window.
pub const SLOT: Duration = Duration::from_secs(1);
/// Slots kept: the window is the current slot and the 4 before it.
pub const SLOTS: usize = 5;
/// How often the p95 is worked out again.
pub const REFRESH: Duration = Duration::from_millis(100);

/// Values below 2^LOW_BITS µs share bucket 0.
const LOW_BITS: u32 = 6;
/// Values from 2^HIGH_BITS µs (~67 s) share the last bucket.
const HIGH_BITS: u32 = 26;
/// Buckets per power of two (3 bits after the leading one).
const SUB: u32 = 8;
const BUCKETS: usize = 1 + ((HIGH_BITS - LOW_BITS) * SUB) as usize + 1;

/// The bucket of a latency in µs.
fn bucket(us: u64) -> usize {
    if us < 1 << LOW_BITS {
        return 0;
    }
    if us >= 1 << HIGH_BITS {
        return BUCKETS - 1;
    }
    let e = 63 - us.leading_zeros();
    let sub = (us >> (e - 3)) & u64::from(SUB - 1);
    1 + ((e - LOW_BITS) * SUB) as usize + sub as usize
}

/// The upper edge of a bucket in µs (the value reported for it).
fn upper(i: usize) -> u64 {
    match i {
        0 => 1 << LOW_BITS,
        i if i >= BUCKETS - 1 => 1 << HIGH_BITS,
        i => {
            let (e, sub) = (
                LOW_BITS + (i as u32 - 1) / SUB,
                (i as u64 - 1) % u64::from(SUB),
            );
            (u64::from(SUB) + sub + 1) << (e - 3)
        }
    }
}

struct Slot {
    /// The second (`now / SLOT`) it counts; `u64::MAX` before its first sample.
    epoch: AtomicU64,
    counts: Box<[AtomicU32]>,
}

/// Recent attempt latencies and the delay they give.
pub struct P95 {
    slots: Box<[Slot]>,
    /// The delay in µs; 0 while the window holds too few samples.
    delay_us: AtomicU64,
    /// When (ns on the breaker's clock) the delay is next worked out again.
    next_refresh: AtomicU64,
}

impl Default for P95 {
    fn default() -> Self {
        Self::new()
    }
}

impl P95 {
    pub fn new() -> Self {
        Self {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    epoch: AtomicU64::new(u64::MAX),
                    counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
                })
                .collect(),
            delay_us: AtomicU64::new(0),
            next_refresh: AtomicU64::new(0),
        }
    }

    /// One attempt's (or cancelled copy's) latency at `now` (the breaker's clock).
    pub fn add(&self, now: Duration, latency: Duration) {
        let epoch = now.as_nanos() as u64 / SLOT.as_nanos() as u64;
        let slot = &self.slots[(epoch % SLOTS as u64) as usize];
        let seen = slot.epoch.load(Ordering::Acquire);
        if seen != epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            for c in slot.counts.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        slot.counts[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The hedge delay at `now`: `None` while the window holds fewer than [`MIN_SAMPLES`].
    pub fn delay(&self, now: Duration) -> Option<Duration> {
        let ns = now.as_nanos() as u64;
        let due = self.next_refresh.load(Ordering::Relaxed);
        if ns >= due
            && self
                .next_refresh
                .compare_exchange(
                    due,
                    ns + REFRESH.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let us = self
                .p95_us(now)
                .map_or(0, |p| p.max(FLOOR.as_micros() as u64));
            self.delay_us.store(us, Ordering::Relaxed);
        }
        match self.delay_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The p95 of the window at `now` in µs (its bucket's upper edge), without the floor;
    /// `None` with fewer than [`MIN_SAMPLES`] samples.
    pub fn p95_us(&self, now: Duration) -> Option<u64> {
        let epoch = now.as_nanos() as u64 / SLOT.as_nanos() as u64;
        let mut counts = [0u64; BUCKETS];
        for s in self.slots.iter() {
            let e = s.epoch.load(Ordering::Acquire);
            if e == u64::MAX || e > epoch || epoch - e >= SLOTS as u64 {
                continue;
            }
            for (sum, c) in counts.iter_mut().zip(s.counts.iter()) {
                *sum += u64::from(c.load(Ordering::Relaxed));
            }
        }
        let total: u64 = counts.iter().sum();
        if total < MIN_SAMPLES {
            return None;
        }
        // The smallest value with at least 95 % of the samples at or below it.
        let rank = (total * 95).div_ceil(100);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper(i));
            }
        }
        Some(upper(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_hold_their_values() {
        let mut last = 0;
        for us in [
            1,
            63,
            64,
            65,
            100,
            1000,
            2000,
            2047,
            2048,
            10_000,
            300_000,
            67_000_000,
            u64::MAX,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            // Inside the tracked range a value is below its bucket's upper edge, by 12.5 % at most.
            if (64..1 << HIGH_BITS).contains(&us) {
                assert!(upper(b) > us, "{us} in bucket {b} up to {}", upper(b));
                assert!(
                    upper(b) as f64 <= us as f64 * 1.125 + 1.0,
                    "{us} -> {}",
                    upper(b)
                );
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for i in 1..BUCKETS - 1 {
            assert!(upper(i) > upper(i - 1));
            assert_eq!(bucket(upper(i)), i + 1, "the edge starts the next bucket");
        }
    }
}
