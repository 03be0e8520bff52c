//! The fleet circuit's settings (`fleetCircuit`, `fleetQuorum`; the integer spec sits in
//! the one table in `mod.rs`, the string one here beside its parser).

use super::resolver::{err, key_of, Resolver};
use super::{spec, ConfigError, StrSpec};

pub const FLEET_CIRCUIT: StrSpec = StrSpec {
    option: "fleetCircuit",
    env: &["DNASTORE_FLEET_CIRCUIT"],
    default: Some("off"),
    secret: false,
    doc: "off: each replica's circuit learns alone; on: every replica of this breaker name shares one circuit through redisUrl (fleet opens, leased half-open trials, new replicas start in the fleet's state; docs: the fleet circuit). Needs redisUrl.",
};

/// The fleet circuit, validated (only with `fleetCircuit: 'on'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// Replicas that must have opened on their own evidence within one
    /// `rollingCountTimeout` before the fleet opens (`fleetQuorum`).
    pub quorum: u32,
}

impl Resolver<'_> {
    /// `redis`: whether `redisUrl` is set (the fleet shares its circuit through it).
    pub(super) fn fleet(&self, redis: bool) -> Result<Option<FleetConfig>, ConfigError> {
        let (mode, src) = self
            .string(&FLEET_CIRCUIT)?
            .expect("fleetCircuit has a default");
        let key = key_of(&FLEET_CIRCUIT, &src);
        let on = match mode.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "" => false,
            "on" | "true" | "1" => true,
            _ => return Err(err(key, format!("invalid {src}: must be off or on"))),
        };
        let quorum = self.int(&spec::fleet_quorum)? as u32;
        if !on {
            return Ok(None);
        }
        if !redis {
            return Err(err(
                key,
                format!("invalid {src}: fleetCircuit on needs redisUrl (DNASTORE_LKG_REDIS_URL): the replicas share their circuit through it"),
            ));
        }
        Ok(Some(FleetConfig { quorum }))
    }
}
