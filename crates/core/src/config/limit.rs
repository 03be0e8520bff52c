//! Slow-call, bulkhead and adaptive-limit settings (their integer specs sit in the one
//! table in `mod.rs`; the string one is declared here beside its parser).

use std::time::Duration;

use super::resolver::{err, key_of, Resolver};
use super::{spec, ConfigError, StrSpec};

pub const CONCURRENCY_LIMIT: StrSpec = StrSpec {
    option: "concurrencyLimit",
    env: &["DNASTORE_CONCURRENCY_LIMIT"],
    default: Some("fixed"),
    secret: false,
    doc: "fixed: at most maxConcurrent calls in flight; adaptive: a latency-driven limit between minConcurrency and maxConcurrent (Netflix concurrency-limits' Gradient2; docs/bulkhead.md). Needs maxConcurrent.",
};

/// Slow-call tripping, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowCallConfig {
    /// A call longer than this is slow; `None` when `slowCallDurationMs` is 0 (off).
    pub duration: Option<Duration>,
    pub rate_threshold: u32,
}

/// How the bulkhead's cap is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    Fixed,
    /// Between `min` and `max`, driven by measured latency.
    Adaptive {
        min: u32,
    },
}

/// The bulkhead, validated (only with `maxConcurrent` > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitConfig {
    pub max_concurrent: u32,
    pub max_queued: u32,
    pub queue_timeout: Duration,
    pub kind: LimitKind,
}

impl Resolver<'_> {
    pub(super) fn limits(&self) -> Result<(SlowCallConfig, Option<LimitConfig>), ConfigError> {
        let slow = SlowCallConfig {
            duration: Some(self.ms(&spec::slow_call_duration)?).filter(|d| !d.is_zero()),
            rate_threshold: self.int(&spec::slow_call_rate)? as u32,
        };
        let (mode, src) = self
            .string(&CONCURRENCY_LIMIT)?
            .expect("concurrencyLimit has a default");
        let key = key_of(&CONCURRENCY_LIMIT, &src);
        let adaptive = match mode.trim().to_ascii_lowercase().as_str() {
            "fixed" | "" => false,
            "adaptive" => true,
            _ => {
                return Err(err(
                    key,
                    format!("invalid {src}: must be fixed or adaptive"),
                ))
            }
        };
        let max = self.int(&spec::max_concurrent)? as u32;
        let min = self.int(&spec::min_concurrency)? as u32;
        // Validated even without a bulkhead, so a bad value is never silently ignored.
        let max_queued = self.int(&spec::max_queued)? as u32;
        let queue_timeout = self.ms(&spec::queue_timeout)?;
        if max == 0 {
            // The bulkhead's other settings mean nothing without it: a silently ignored
            // maxQueued reads as protection that is not there.
            for s in [
                &spec::max_queued,
                &spec::queue_timeout,
                &spec::min_concurrency,
            ] {
                // (Its default, given explicitly, is harmless: `maxQueued: 0`.)
                let set = self.int(s)? != s.default;
                if let Some(given) = self.int_source(s).filter(|_| set) {
                    return Err(err(
                        given,
                        format!("invalid {given}: only applies with maxConcurrent (DNASTORE_MAX_CONCURRENT) from 1 to 100000, the bulkhead it configures"),
                    ));
                }
            }
            if adaptive {
                return Err(err(
                    key,
                    format!("invalid {src}: adaptive needs maxConcurrent (DNASTORE_MAX_CONCURRENT) from 1 to 100000, its upper bound"),
                ));
            }
            return Ok((slow, None));
        }
        if !adaptive {
            let set = u64::from(min) != spec::min_concurrency.default;
            if let Some(given) = self.int_source(&spec::min_concurrency).filter(|_| set) {
                return Err(err(
                    given,
                    format!("invalid {given}: only applies with concurrencyLimit 'adaptive' (DNASTORE_CONCURRENCY_LIMIT)"),
                ));
            }
        }
        if adaptive && min > max {
            let given = self.int_label(&spec::min_concurrency);
            return Err(err(
                given,
                format!(
                    "invalid {given} ({min}): must be <= {} ({max})",
                    self.int_label(&spec::max_concurrent)
                ),
            ));
        }
        Ok((
            slow,
            Some(LimitConfig {
                max_concurrent: max,
                max_queued,
                queue_timeout,
                kind: if adaptive {
                    LimitKind::Adaptive { min }
                } else {
                    LimitKind::Fixed
                },
            }),
        ))
    }
}
