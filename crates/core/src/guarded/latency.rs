//! Latencies of the calls in the rolling window, for opossum's `latencyMean` and
//! `percentiles`. Each bucket keeps at most [`MAX_SAMPLES`] samples and reuses its
//! buffer when it rolls over, so memory stays flat however many calls go through.

use std::time::Duration;

/// The percentiles opossum reports.
pub const PERCENTILES: [f64; 9] = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 1.0];

/// Samples kept per bucket; past it a bucket's percentiles come from its first calls.
pub const MAX_SAMPLES: usize = 4096;

struct Bucket {
    epoch: u64,
    /// Microseconds.
    samples: Vec<u32>,
}

pub struct LatencyWindow {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
}

impl LatencyWindow {
    pub fn new(window: Duration, buckets: u32) -> Self {
        let n = buckets.max(1) as usize;
        Self {
            buckets: (0..n)
                .map(|_| Bucket {
                    epoch: u64::MAX,
                    samples: Vec::new(),
                })
                .collect(),
            width_nanos: (window.as_nanos() as u64 / n as u64).max(1),
        }
    }

    fn epoch(&self, now: Duration) -> u64 {
        now.as_nanos() as u64 / self.width_nanos
    }

    pub fn add(&mut self, now: Duration, latency: Duration) {
        let epoch = self.epoch(now);
        let n = self.buckets.len() as u64;
        let b = &mut self.buckets[(epoch % n) as usize];
        if b.epoch != epoch {
            b.epoch = epoch;
            b.samples.clear();
        }
        if b.samples.len() < MAX_SAMPLES {
            b.samples
                .push(latency.as_micros().min(u32::MAX as u128) as u32);
        }
    }

    /// Mean and percentiles in ms over the window at `now` (zeros when it holds none),
    /// picked as opossum picks them: the sample at ceil(p * n) - 1 of the sorted list.
    pub fn summary(&self, now: Duration) -> (f64, [f64; PERCENTILES.len()]) {
        let epoch = self.epoch(now);
        let n = self.buckets.len() as u64;
        let mut all: Vec<u32> = Vec::new();
        for b in self.buckets.iter() {
            if b.epoch != u64::MAX && b.epoch <= epoch && epoch - b.epoch < n {
                all.extend_from_slice(&b.samples);
            }
        }
        let mut out = [0.0; PERCENTILES.len()];
        if all.is_empty() {
            return (0.0, out);
        }
        all.sort_unstable();
        let ms = |us: u32| us as f64 / 1000.0;
        let mean = all.iter().map(|&v| v as f64).sum::<f64>() / all.len() as f64 / 1000.0;
        for (o, p) in out.iter_mut().zip(PERCENTILES) {
            let idx = if p == 0.0 {
                0
            } else {
                ((p * all.len() as f64).ceil() as usize).clamp(1, all.len()) - 1
            };
            *o = ms(all[idx]);
        }
        (mean, out)
    }
}
