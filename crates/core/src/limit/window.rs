//! The adaptive limit's sampling window, after Netflix concurrency-limits' `WindowedLimit`
//! with a percentile sample window: latency samples are gathered for at least [`WINDOW`]
//! and [`WINDOW_SAMPLES`] samples, and only the window's median reaches Gradient2.
//!
//! Why: the latency a breaker measures is DNAStore's plus the client's own delays. A
//! CPU-bound client (a busy event loop, a descheduled I/O thread) sees every answer that
//! arrives while it is stalled late, all at once; fed sample by sample, Gradient2 read
//! each such burst as DNAStore slowing down and shed calls although DNAStore's latency
//! never changed (issue 25: 1 to 4 % of calls at a steady 2 ms). A stall shorter than half
//! a window is a minority of its samples and cannot move the median; a DNAStore that
//! really slows down slows every answer, so the median follows within one window.
//!
//! The median comes from a log-scale histogram (four bins per power of two, so within
//! 12.5 %, far finer than Gradient2's 1.5x tolerance): a fixed 512 bytes, no allocation and
//! O(1) per sample, whatever the call rate.

use std::time::Duration;

use tokio::time::Instant;

/// Shortest window. Long enough that the client's stalls (tens of ms under CPU load) are
/// a minority of a window's samples; short enough that a DNAStore slowing from 5 ms to
/// 2.5 s at 100 calls/s is seen two windows after its first slow answer (the step test in
/// `tests.rs`). Netflix's own minimum is 100 ms, its default 1 s.
pub const WINDOW: Duration = Duration::from_millis(250);
/// Fewest samples in a window (Netflix's `windowSize` default): at a low call rate the
/// window stays open until it has them, so a median is never one or two answers.
pub const WINDOW_SAMPLES: u32 = 10;

const BINS: usize = 128;

/// A closed window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Closed {
    pub median: Duration,
    pub samples: u32,
    /// The most calls in flight when one of its samples was taken (Gradient2's app-limited
    /// test, as `WindowedLimit` passes it).
    pub max_inflight: u32,
}

/// The open window. Plain data: the caller serialises samples (the limiter's mutex).
#[derive(Clone, Debug)]
pub struct SampleWindow {
    opened: Option<Instant>,
    counts: [u32; BINS],
    samples: u32,
    max_inflight: u32,
}

impl Default for SampleWindow {
    fn default() -> Self {
        Self {
            opened: None,
            counts: [0; BINS],
            samples: 0,
            max_inflight: 0,
        }
    }
}

impl SampleWindow {
    /// Adds one sample taken at `now`; the window it closes, if it had lasted [`WINDOW`]
    /// and held [`WINDOW_SAMPLES`]. The next window opens at `now`.
    pub fn add(&mut self, rtt: Duration, inflight: u32, now: Instant) -> Option<Closed> {
        let opened = *self.opened.get_or_insert(now);
        let b = bin(rtt.as_micros().min(u32::MAX as u128) as u32);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.samples = self.samples.saturating_add(1);
        self.max_inflight = self.max_inflight.max(inflight);
        if self.samples < WINDOW_SAMPLES || now.saturating_duration_since(opened) < WINDOW {
            return None;
        }
        let closed = Closed {
            median: self.median(),
            samples: self.samples,
            max_inflight: self.max_inflight,
        };
        *self = Self {
            opened: Some(now),
            ..Self::default()
        };
        Some(closed)
    }

    /// The lower median: the bin holding the ((n + 1) / 2)-th smallest sample.
    fn median(&self) -> Duration {
        let rank = self.samples.div_ceil(2);
        let mut seen = 0u32;
        for (b, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Duration::from_nanos((value(b) * 1000.0) as u64);
            }
        }
        Duration::ZERO
    }
}

/// A latency in µs -> its bin: exact below 8 µs, then four bins per power of two (the
/// two bits after the leading one). 2^32 µs (71 minutes) falls in the last bin.
fn bin(us: u32) -> usize {
    let us = us.max(1);
    if us < 8 {
        return us as usize;
    }
    let e = 31 - us.leading_zeros();
    let f = (us >> (e - 2)) & 3;
    (4 * e + f) as usize
}

/// A bin's middle, in µs.
fn value(b: usize) -> f64 {
    if b < 8 {
        return b as f64;
    }
    let (e, f) = (b / 4, b % 4);
    (1u64 << e) as f64 * (1.0 + (2 * f + 1) as f64 / 8.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bins_are_monotonic_and_within_a_fifth() {
        let mut last = 0;
        for us in (1..5_000_000u32).step_by(7).chain([u32::MAX]) {
            let b = bin(us);
            assert!(b >= last && b < BINS, "{us} µs -> bin {b}");
            last = b;
            let v = value(b);
            assert!(
                (v - us as f64).abs() <= 0.13 * us as f64 + 0.5,
                "{us} µs read as {v}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_closes_after_its_time_and_its_samples_with_their_median() {
        let mut w = SampleWindow::default();
        // Many samples in no time: the window is not over.
        for _ in 0..100 {
            assert_eq!(w.add(2 * MS, 3, Instant::now()), None);
        }
        tokio::time::advance(WINDOW - MS).await;
        // A minority of late answers (a stall) does not move the median.
        for _ in 0..90 {
            assert_eq!(w.add(60 * MS, 40, Instant::now()), None);
        }
        tokio::time::advance(MS).await;
        let c = w.add(2 * MS, 1, Instant::now()).expect("closed");
        assert_eq!((c.samples, c.max_inflight), (191, 40));
        assert!(
            (c.median.as_secs_f64() - 0.002).abs() < 0.0003,
            "{:?}",
            c.median
        );
        // The next window opened with that sample's time: a sample alone never closes one,
        // nor a long silence with too few samples.
        tokio::time::advance(10 * WINDOW).await;
        for _ in 0..WINDOW_SAMPLES - 1 {
            assert_eq!(w.add(2500 * MS, 1, Instant::now()), None);
        }
        let c = w.add(2500 * MS, 1, Instant::now()).expect("closed");
        assert_eq!(c.samples, WINDOW_SAMPLES);
        assert!((c.median.as_secs_f64() - 2.5).abs() < 0.3, "{:?}", c.median);
    }
}
