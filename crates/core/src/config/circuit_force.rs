//! `circuitForce` (`DNASTORE_CIRCUIT_FORCE`): a forced state applied when the breaker is
//! created, e.g. for a DNAStore maintenance window known at deploy time. The same states
//! as `breaker.open()` and `breaker.disable()` (the circuit's `force.rs`).

use super::resolver::{err, key_of, Resolver};
use super::{ConfigError, StrSpec};

pub const CIRCUIT_FORCE: StrSpec = StrSpec {
    option: "circuitForce",
    env: &["DNASTORE_CIRCUIT_FORCE"],
    default: Some("none"),
    secret: false,
    doc: "none: automatic; open: the circuit starts forced open (no trials, fallbacks served, durable writes queued) until breaker.close() or enable(); disabled: every call goes to DNAStore and nothing trips (outcomes still counted) until breaker.enable().",
};

/// A forced state to start in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitForce {
    Open,
    Disabled,
}

impl Resolver<'_> {
    pub(super) fn circuit_force(&self) -> Result<Option<CircuitForce>, ConfigError> {
        let (mode, src) = self
            .string(&CIRCUIT_FORCE)?
            .expect("circuitForce has a default");
        match mode.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(None),
            "open" => Ok(Some(CircuitForce::Open)),
            "disabled" => Ok(Some(CircuitForce::Disabled)),
            _ => Err(err(
                key_of(&CIRCUIT_FORCE, &src),
                format!("invalid {src}: must be none, open or disabled"),
            )),
        }
    }
}
