//! Rolling counts over `rollingCountTimeout`, split in `rollingCountBuckets` buckets.
//!
//! Two flavours: [`RollingWindow`] is plain data guarded by the circuit's lock (exact
//! counts for every completed call), [`AtomicWindow`] is lock-free for the paths that must
//! not take a lock (short-circuit rejections, retry-budget deposits).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The width of one bucket: the window over its bucket count (at least 1 ns).
fn bucket_nanos(window: Duration, buckets: u32) -> u64 {
    (window.as_nanos() as u64 / buckets.max(1) as u64).max(1)
}

/// The time a circuit's windows see: the clock's, or, when the caller rotates the buckets
/// (opossum's `rotateBucketController`), a time that moves one bucket per [`rotate`].
///
/// [`rotate`]: WindowClock::rotate
#[derive(Debug)]
pub struct WindowClock {
    rotations: Option<AtomicU64>,
    width_nanos: u64,
}

impl WindowClock {
    pub fn new(window: Duration, buckets: u32, rotated_by_caller: bool) -> Self {
        Self {
            rotations: rotated_by_caller.then(|| AtomicU64::new(0)),
            width_nanos: bucket_nanos(window, buckets),
        }
    }

    /// The windows' time at clock time `now`.
    pub fn at(&self, now: Duration) -> Duration {
        match &self.rotations {
            None => now,
            Some(r) => {
                Duration::from_nanos(r.load(Ordering::Acquire).saturating_mul(self.width_nanos))
            }
        }
    }

    /// One bucket on, if the caller rotates them; answers whether it does.
    pub fn rotate(&self) -> bool {
        match &self.rotations {
            Some(r) => {
                r.fetch_add(1, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }
}

/// Counts of one bucket, and the sum over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub successes: u64,
    pub failures: u64,
    pub timeouts: u64,
    pub client_errors: u64,
    pub fallbacks: u64,
    pub retries: u64,
    /// Calls slower than `slowCallDurationMs`, whatever their verdict (resilience4j counts
    /// slow successes and slow failures alike).
    pub slow: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.successes += o.successes;
        self.failures += o.failures;
        self.timeouts += o.timeouts;
        self.client_errors += o.client_errors;
        self.fallbacks += o.fallbacks;
        self.retries += o.retries;
        self.slow += o.slow;
    }

    /// Calls with a health verdict: client errors count as healthy answers.
    pub fn calls(&self) -> u64 {
        self.successes + self.client_errors + self.failures
    }

    /// Failure percentage 0..=100 of the calls in the window.
    pub fn failure_percent(&self) -> f64 {
        let calls = self.calls();
        if calls == 0 {
            0.0
        } else {
            self.failures as f64 * 100.0 / calls as f64
        }
    }

    /// Slow-call percentage 0..=100 of the calls in the window.
    pub fn slow_percent(&self) -> f64 {
        let calls = self.calls();
        if calls == 0 {
            0.0
        } else {
            self.slow as f64 * 100.0 / calls as f64
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    epoch: u64,
    counts: Counts,
}

/// Exact rolling counts; callers hold the circuit lock.
#[derive(Debug)]
pub struct RollingWindow {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
}

impl RollingWindow {
    pub fn new(window: Duration, buckets: u32) -> Self {
        let n = buckets.max(1) as usize;
        let width_nanos = bucket_nanos(window, buckets);
        Self {
            buckets: vec![
                Bucket {
                    epoch: u64::MAX,
                    counts: Counts::default()
                };
                n
            ]
            .into_boxed_slice(),
            width_nanos,
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        now.as_nanos() as u64 / self.width_nanos
    }

    /// The bucket for `now`, cleared if it last held an older epoch.
    pub fn current(&mut self, now: Duration) -> &mut Counts {
        let epoch = self.epoch(now);
        let n = self.buckets.len() as u64;
        let b = &mut self.buckets[(epoch % n) as usize];
        if b.epoch != epoch {
            b.epoch = epoch;
            b.counts = Counts::default();
        }
        &mut b.counts
    }

    /// Sum over the buckets still inside the window at `now`.
    pub fn totals(&self, now: Duration) -> Counts {
        let epoch = self.epoch(now);
        let n = self.buckets.len() as u64;
        let mut sum = Counts::default();
        for b in self.buckets.iter() {
            if b.epoch != u64::MAX && b.epoch <= epoch && epoch - b.epoch < n {
                sum.add(&b.counts);
            }
        }
        sum
    }

    /// Each bucket's counts at `now`, the current bucket first; a bucket no call reached
    /// (or one that left the window) holds zeros.
    pub fn buckets(&self, now: Duration) -> Vec<Counts> {
        let epoch = self.epoch(now);
        let n = self.buckets.len() as u64;
        (0..n)
            .map(|age| match epoch.checked_sub(age) {
                Some(e) => {
                    let b = &self.buckets[(e % n) as usize];
                    if b.epoch == e {
                        b.counts
                    } else {
                        Counts::default()
                    }
                }
                None => Counts::default(),
            })
            .collect()
    }

    pub fn reset(&mut self) {
        for b in self.buckets.iter_mut() {
            b.epoch = u64::MAX;
            b.counts = Counts::default();
        }
    }
}

/// Lock-free rolling counter: each slot packs (epoch low 32 bits, count 32 bits) in one
/// atomic, updated by compare-and-swap, so a bucket rollover never loses or double-counts.
#[derive(Debug)]
pub struct AtomicWindow {
    slots: Box<[AtomicU64]>,
    width_nanos: u64,
}

const COUNT_MASK: u64 = 0xFFFF_FFFF;

impl AtomicWindow {
    pub fn new(window: Duration, buckets: u32) -> Self {
        let n = buckets.max(1) as usize;
        Self {
            slots: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
            width_nanos: bucket_nanos(window, buckets),
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        (now.as_nanos() as u64 / self.width_nanos) & COUNT_MASK
    }

    pub fn add(&self, now: Duration, n: u32) {
        let epoch = self.epoch(now);
        let slot = &self.slots[(epoch % self.slots.len() as u64) as usize];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let next = if cur != u64::MAX && cur >> 32 == epoch {
                let count = (cur & COUNT_MASK).saturating_add(n as u64).min(COUNT_MASK);
                (epoch << 32) | count
            } else {
                (epoch << 32) | n as u64
            };
            match slot.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn total(&self, now: Duration) -> u64 {
        let epoch = self.epoch(now);
        let n = self.slots.len() as u64;
        let mut sum = 0;
        for s in self.slots.iter() {
            let v = s.load(Ordering::Acquire);
            if v == u64::MAX {
                continue;
            }
            let e = v >> 32;
            let age = epoch.wrapping_sub(e) & COUNT_MASK;
            if age < n {
                sum += v & COUNT_MASK;
            }
        }
        sum
    }

    /// Each bucket's count at `now`, the current bucket first.
    pub fn buckets(&self, now: Duration) -> Vec<u64> {
        let epoch = self.epoch(now);
        let n = self.slots.len() as u64;
        (0..n)
            .map(|age| {
                let e = epoch.wrapping_sub(age) & COUNT_MASK;
                let v = self.slots[(e % n) as usize].load(Ordering::Acquire);
                if v != u64::MAX && v >> 32 == e {
                    v & COUNT_MASK
                } else {
                    0
                }
            })
            .collect()
    }

    pub fn reset(&self) {
        for s in self.slots.iter() {
            s.store(u64::MAX, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn old_buckets_leave_the_window() {
        // 10 buckets of 100 ms.
        let mut w = RollingWindow::new(1000 * MS, 10);
        w.current(Duration::ZERO).failures += 3;
        w.current(450 * MS).successes += 2;
        assert_eq!(w.totals(999 * MS).failures, 3);
        assert_eq!(w.totals(999 * MS).successes, 2);
        // At 1000 ms the first bucket (0..100 ms) has left; the 400 ms bucket stays until 1400 ms.
        assert_eq!(w.totals(1000 * MS).failures, 0);
        assert_eq!(w.totals(1399 * MS).successes, 2);
        assert_eq!(w.totals(1400 * MS).successes, 0);
    }

    #[test]
    fn a_reused_slot_is_cleared() {
        let mut w = RollingWindow::new(1000 * MS, 10);
        w.current(Duration::ZERO).failures += 5;
        // Same slot index one full window later.
        w.current(1000 * MS).failures += 1;
        assert_eq!(w.totals(1000 * MS).failures, 1);
    }

    #[test]
    fn buckets_list_the_window_newest_first() {
        let mut w = RollingWindow::new(1000 * MS, 10);
        w.current(Duration::ZERO).failures += 3;
        w.current(250 * MS).successes += 2;
        let b = w.buckets(250 * MS);
        assert_eq!(b.len(), 10);
        assert_eq!((b[0].successes, b[2].failures), (2, 3));
        assert_eq!(b.iter().map(Counts::calls).sum::<u64>(), 5);
        // The 0 ms bucket has left the window at 1000 ms; the 200 ms one is 8 buckets old.
        let b = w.buckets(1000 * MS);
        assert_eq!(
            (b[8].successes, b.iter().map(|c| c.failures).sum::<u64>()),
            (2, 0)
        );
        let a = AtomicWindow::new(1000 * MS, 10);
        a.add(Duration::ZERO, 4);
        a.add(100 * MS, 1);
        assert_eq!(a.buckets(100 * MS)[..3], [1, 4, 0]);
        assert_eq!(a.buckets(1050 * MS)[0], 0);
        assert_eq!(a.buckets(1050 * MS)[9], 1);
    }

    #[test]
    fn a_window_clock_rotated_by_the_caller_ignores_the_clock() {
        let c = WindowClock::new(1000 * MS, 10, true);
        assert_eq!(c.at(Duration::from_secs(99)), Duration::ZERO);
        assert!(c.rotate() && c.rotate());
        assert_eq!(c.at(Duration::from_secs(99)), 200 * MS);
        let t = WindowClock::new(1000 * MS, 10, false);
        assert!(!t.rotate());
        assert_eq!(t.at(7 * MS), 7 * MS);
    }

    #[test]
    fn atomic_window_counts_exactly_and_expires() {
        let w = AtomicWindow::new(1000 * MS, 10);
        for _ in 0..5 {
            w.add(Duration::ZERO, 1);
        }
        w.add(950 * MS, 2);
        assert_eq!(w.total(950 * MS), 7);
        assert_eq!(w.total(1000 * MS), 2);
        assert_eq!(w.total(2000 * MS), 0);
    }

    #[test]
    fn atomic_window_is_exact_under_threads() {
        let w = std::sync::Arc::new(AtomicWindow::new(1000 * MS, 10));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        w.add(Duration::from_millis(5), 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(w.total(Duration::from_millis(5)), 40_000);
    }
}
