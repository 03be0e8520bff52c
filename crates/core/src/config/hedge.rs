//! Hedged reads (`hedge/`): `hedgeAfterMs` is a number of ms or `'auto'`, so it is declared
//! here beside its own parser; `hedgeMax` is an integer in the one table in `mod.rs`.

use std::time::Duration;

use super::resolver::{err, parse_uint, truncate, Resolver};
use super::{spec, ConfigError, RawValue, StrSpec};

pub const HEDGE_AFTER: StrSpec = StrSpec {
    option: "hedgeAfterMs",
    env: &["DNASTORE_HEDGE_AFTER_MS"],
    default: Some("0"),
    secret: false,
    doc: "Hedged reads: a GET or HEAD attempt with no answer after this many ms is sent once more (up to hedgeMax extra copies) and the first answer wins, the others are cancelled; 'auto': this breaker's recent p95 attempt latency, at least 10 ms; 0: off. Hedges draw from the retry budget; none is sent while the budget is spent, the bulkhead is full or the circuit is not closed.",
};

/// The largest fixed delay (the largest `timeout`; a delay must be below the timeout anyway).
const MAX_MS: u64 = 600_000;

const RANGE: &str = "an integer from 0 to 600000 (ms; 0: off) or 'auto'";

/// When a hedge is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeDelay {
    /// This long after the attempt started.
    Fixed(Duration),
    /// At the breaker's recent p95 attempt latency, with a floor (`hedge/auto.rs`).
    Auto,
}

/// Hedging, validated; only with `hedgeAfterMs` other than 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HedgeConfig {
    pub delay: HedgeDelay,
    /// Extra copies of one attempt at most (`hedgeMax`).
    pub max: u32,
}

/// `Some(None)`: 0 (off); `None`: not a value `hedgeAfterMs` takes.
fn parse(text: &str) -> Option<Option<HedgeDelay>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Some(Some(HedgeDelay::Auto));
    }
    match parse_uint(t)? {
        0 => Some(None),
        n if n <= MAX_MS => Some(Some(HedgeDelay::Fixed(Duration::from_millis(n)))),
        _ => None,
    }
}

impl Resolver<'_> {
    pub(super) fn hedge(&self) -> Result<Option<HedgeConfig>, ConfigError> {
        let (delay, key) = match self.opts.get(HEDGE_AFTER.option) {
            Some(v) => {
                let key = HEDGE_AFTER.option;
                let parsed = match v {
                    RawValue::Number(n)
                        if n.is_finite()
                            && n.fract() == 0.0
                            && (0.0..=MAX_MS as f64).contains(n) =>
                    {
                        parse(&(*n as u64).to_string())
                    }
                    RawValue::String(t) => parse(t),
                    _ => None,
                };
                let got = match v {
                    RawValue::String(t) => format!("{:?}", truncate(t)),
                    other => other.describe(),
                };
                let delay = parsed.ok_or_else(|| {
                    err(
                        key,
                        format!("invalid option `{key}`: must be {RANGE}, got {got}"),
                    )
                })?;
                (delay, key)
            }
            None => {
                let key = HEDGE_AFTER.env[0];
                match (self.env)(key).filter(|v| !v.trim().is_empty()) {
                    None => (None, key),
                    Some(raw) => {
                        let delay = parse(&raw).ok_or_else(|| {
                            err(
                                key,
                                format!(
                                    "invalid environment variable {key}={:?}: must be {RANGE}",
                                    truncate(raw.trim())
                                ),
                            )
                        })?;
                        (delay, key)
                    }
                }
            }
        };
        let max = self.int(&spec::hedge_max)? as u32;
        let Some(delay) = delay else {
            // Without hedging hedgeMax means nothing: a silently ignored value reads as
            // tail-latency protection that is not there.
            let set = u64::from(max) != spec::hedge_max.default;
            if let Some(given) = self.int_source(&spec::hedge_max).filter(|_| set) {
                return Err(err(
                    given,
                    format!("invalid {given}: only applies with hedgeAfterMs (DNASTORE_HEDGE_AFTER_MS) set to a delay or 'auto', the hedging it configures"),
                ));
            }
            return Ok(None);
        };
        if let HedgeDelay::Fixed(d) = delay {
            let timeout = self.ms(&spec::timeout)?;
            if d >= timeout {
                return Err(err(
                    key,
                    format!(
                        "invalid {key} ({} ms): must be below timeout ({} ms), which bounds the whole attempt: no hedge would ever be sent",
                        d.as_millis(),
                        timeout.as_millis()
                    ),
                ));
            }
        }
        Ok(Some(HedgeConfig { delay, max }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, RawOptions, RawValue};
    use super::*;

    fn opts(pairs: &[(&str, RawValue)]) -> Result<Config, ConfigError> {
        let mut o = RawOptions::new();
        for (k, v) in pairs {
            o.insert(k, v.clone());
        }
        Config::resolve(&o, &|_| None)
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        Config::resolve(&RawOptions::new(), &move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn hedge_after_ms_takes_a_delay_auto_or_zero_from_options_and_the_environment() {
        assert_eq!(Config::defaults().hedge, None, "off by default");
        let fixed = |ms| {
            Some(HedgeConfig {
                delay: HedgeDelay::Fixed(Duration::from_millis(ms)),
                max: 1,
            })
        };
        let n = |v: f64| RawValue::Number(v);
        let s = |v: &str| RawValue::String(v.into());
        assert_eq!(opts(&[("hedgeAfterMs", n(25.0))]).unwrap().hedge, fixed(25));
        assert_eq!(
            opts(&[("hedgeAfterMs", s(" 25 "))]).unwrap().hedge,
            fixed(25)
        );
        assert_eq!(opts(&[("hedgeAfterMs", n(0.0))]).unwrap().hedge, None);
        let auto = opts(&[("hedgeAfterMs", s("AUTO")), ("hedgeMax", n(3.0))]).unwrap();
        assert_eq!(
            auto.hedge,
            Some(HedgeConfig {
                delay: HedgeDelay::Auto,
                max: 3
            })
        );
        assert_eq!(
            env(&[("DNASTORE_HEDGE_AFTER_MS", "40")]).unwrap().hedge,
            fixed(40)
        );
        assert_eq!(
            env(&[("DNASTORE_HEDGE_AFTER_MS", "auto")])
                .unwrap()
                .hedge
                .unwrap()
                .delay,
            HedgeDelay::Auto
        );
        assert_eq!(
            env(&[("DNASTORE_HEDGE_AFTER_MS", " ")]).unwrap().hedge,
            None
        );
        // Options win over the environment.
        let c = Config::resolve(&RawOptions::new().set("hedgeAfterMs", n(0.0)), &|k| {
            (k == "DNASTORE_HEDGE_AFTER_MS").then(|| "auto".to_string())
        });
        assert_eq!(c.unwrap().hedge, None);
    }

    #[test]
    fn bad_hedge_values_name_the_option_or_variable_and_the_range() {
        let n = |v: f64| RawValue::Number(v);
        for bad in [
            n(-1.0),
            n(2.5),
            n(f64::NAN),
            n(600_001.0),
            RawValue::String("soon".into()),
            RawValue::String("-5".into()),
            RawValue::Bool(true),
            RawValue::Other("object"),
        ] {
            let e = opts(&[("hedgeAfterMs", bad.clone())]).unwrap_err();
            assert_eq!(e.key, "hedgeAfterMs", "{bad:?}");
            assert!(
                e.message.contains("from 0 to 600000") && e.message.contains("'auto'"),
                "{}",
                e.message
            );
        }
        let e = env(&[("DNASTORE_HEDGE_AFTER_MS", "fast")]).unwrap_err();
        assert_eq!(e.key, "DNASTORE_HEDGE_AFTER_MS");
        assert!(e.message.contains("\"fast\""), "{}", e.message);
        // A delay the attempt's timeout never reaches.
        let e = opts(&[("hedgeAfterMs", n(3000.0))]).unwrap_err();
        assert_eq!(e.key, "hedgeAfterMs");
        assert!(
            e.message.contains("below timeout (3000 ms)"),
            "{}",
            e.message
        );
        assert!(opts(&[("hedgeAfterMs", n(50.0)), ("timeout", n(51.0))]).is_ok());
        let e = env(&[
            ("DNASTORE_HEDGE_AFTER_MS", "100"),
            ("DNASTORE_TIMEOUT_MS", "100"),
        ])
        .unwrap_err();
        assert_eq!(e.key, "DNASTORE_HEDGE_AFTER_MS");
        // hedgeMax: its range, and nothing without hedging.
        let e = opts(&[("hedgeAfterMs", n(25.0)), ("hedgeMax", n(11.0))]).unwrap_err();
        assert_eq!(e.key, "hedgeMax");
        let e = opts(&[("hedgeMax", n(2.0))]).unwrap_err();
        assert_eq!(e.key, "hedgeMax");
        assert!(
            e.message.contains("only applies with hedgeAfterMs"),
            "{}",
            e.message
        );
        let e = env(&[("DNASTORE_HEDGE_MAX", "2")]).unwrap_err();
        assert_eq!(e.key, "DNASTORE_HEDGE_MAX");
        assert!(
            opts(&[("hedgeMax", n(1.0))]).is_ok(),
            "its default, given, is harmless"
        );
    }
}
