//! The adaptive concurrency limit: Netflix concurrency-limits' Gradient2
//! (`com.netflix.concurrency.limits.limit.Gradient2Limit`), fed through a sampling window
//! (`window.rs`): each closed window's median latency counts once for each sample the
//! window held ([`Gradient::update`]), as if every attempt of the window had taken the
//! median. Where the samples agree (DNAStore slowed down: every answer is slow) this is
//! exactly the per-sample rule below, so the limit falls as fast as Gradient2 fed sample
//! by sample; where a minority of them are late (the client's own stalls) nothing moves.
//!
//! Per sample `rtt` with `inflight` calls in flight:
//! - `long` is an exponential average of the samples (the baseline latency: a plain mean
//!   over the first [`WARMUP`] samples, then weight `2 / (LONG_WINDOW + 1)`); when it is more
//!   than twice the sample (latency came back down after a long slow period) it decays by
//!   5 %, so the baseline follows a recovered DNAStore quickly.
//! - `gradient = clamp(TOLERANCE * long / rtt, 0.5, 1.0)`: 1 while latency is within 1.5x
//!   of the baseline, down to 0.5 (never shed more than half at once on an outlier).
//! - `new = limit * gradient + QUEUE`, smoothed: `limit = limit * (1 - SMOOTHING) + new *
//!   SMOOTHING`, then clamped to `[minConcurrency, maxConcurrent]`.
//!
//! Parameters (Gradient2's defaults): TOLERANCE 1.5, SMOOTHING 0.2, QUEUE 4, LONG_WINDOW
//! 600 samples. Under a sustained slowdown (gradient 0.5) the limit falls geometrically
//! (x0.9 per sample) to its fixed point 2 x QUEUE = 8, or minConcurrency if higher.
//!
//! One deviation: Gradient2 holds the limit while the caller is "app-limited" (fewer than
//! limit/2 in flight), so it never grows without evidence that more concurrency is
//! absorbed. Here the limit is bounded by maxConcurrent anyway, so while app-limited it
//! still *grows* when latency is back within tolerance (gradient 1: +QUEUE x SMOOTHING =
//! +0.8 per sample) and holds otherwise. Without this the limit stays at its trough after
//! DNAStore recovers (a Sigil API at 100 req/s x 5 ms has ~1 call in flight), and the next
//! traffic spike would be shed although DNAStore is healthy.

use std::time::Duration;

pub const TOLERANCE: f64 = 1.5;
pub const SMOOTHING: f64 = 0.2;
pub const QUEUE: f64 = 4.0;
pub const LONG_WINDOW: f64 = 600.0;
pub const WARMUP: u32 = 10;
/// Most per-sample steps one window applies. Beyond a few thousand the state has converged
/// (the baseline's weight leaves (1 - 2/601)^4096 < 1e-5 of its old value), so this only
/// bounds the work done under the limiter's lock at very high call rates.
pub const MAX_STEPS: u32 = 4096;

/// Gradient2's state. Plain data: the caller serialises samples (a mutex in `Limiter`).
#[derive(Clone, Debug)]
pub struct Gradient {
    min: f64,
    max: f64,
    limit: f64,
    /// Baseline latency in seconds.
    long: f64,
    samples: u32,
}

impl Gradient {
    /// Starts at `max`: a healthy DNAStore is never shed while the baseline is learnt.
    pub fn new(min: u32, max: u32) -> Self {
        Self {
            min: min as f64,
            max: max as f64,
            limit: max as f64,
            long: 0.0,
            samples: 0,
        }
    }

    /// The limit as a whole number of calls.
    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// The baseline latency (`long`).
    pub fn baseline(&self) -> Duration {
        Duration::from_secs_f64(self.long)
    }

    /// Takes a closed window: its median counted once per sample it held, with the most
    /// calls that were in flight during it. Returns the new limit.
    pub fn update(&mut self, median: Duration, samples: u32, max_inflight: u32) -> u32 {
        for _ in 0..samples.clamp(1, MAX_STEPS) {
            self.sample(median, max_inflight);
        }
        self.limit()
    }

    /// Gradient2's rule for one sample; returns the new limit.
    pub fn sample(&mut self, rtt: Duration, inflight: u32) -> u32 {
        // A zero sample (paused clock, a cached answer) would make the ratio infinite.
        let short = rtt.as_secs_f64().max(1e-6);
        self.samples = self.samples.saturating_add(1);
        let weight = if self.samples <= WARMUP {
            1.0 / self.samples as f64
        } else {
            2.0 / (LONG_WINDOW + 1.0)
        };
        self.long += (short - self.long) * weight;
        if self.long / short > 2.0 {
            self.long *= 0.95;
        }
        let gradient = (TOLERANCE * self.long / short).clamp(0.5, 1.0);
        let app_limited = (inflight as f64) < self.limit / 2.0;
        if app_limited && gradient < 1.0 {
            return self.limit();
        }
        let next = self.limit * gradient + QUEUE;
        self.limit = (self.limit * (1.0 - SMOOTHING) + next * SMOOTHING).clamp(self.min, self.max);
        self.limit()
    }
}
