//! The fleet circuit reached without a breaker, for the operator command's `circuit`
//! subcommand (status, open, close, disable, enable). The core owns it
//! (`fleet/force.rs`); this file converts.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use dnastore_core::fleet::{FleetAdmin, FleetStatus, SEEN_FOR};
use dnastore_core::observer::Control;
use dnastore_core::{Code, Config};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::bridge::{self, settle_with, Run};
use crate::convert;
use crate::throw::throw;

/// The fleet circuit of one breaker name as its Redis holds it.
#[napi(object)]
pub struct FleetCircuitStatus {
    pub name: String,
    /// The Redis URL without credentials.
    pub redis: String,
    /// What the replicas follow: 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled'.
    pub state: String,
    /// The fleet state record's generation; null without one.
    pub generation: Option<f64>,
    /// The replica that opened the fleet, while its record is open.
    pub tripped_by: Option<String>,
    /// The latest operator's command ('open' | 'close' | 'disable' | 'enable'), who gave
    /// it and when (wall ms); null without one.
    pub command: Option<String>,
    pub command_by: Option<String>,
    pub command_at_ms: Option<f64>,
    /// Replicas that said they are alive in the last few seconds.
    pub replicas: f64,
    /// A record Redis holds that does not verify: 'signature' | 'malformed' | 'stale'.
    pub refused: Option<String>,
    /// Whether records are signed (a signing secret is set).
    pub signed: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn status(a: &FleetAdmin, s: FleetStatus) -> FleetCircuitStatus {
    let open = s.record.as_ref().filter(|r| r.open);
    FleetCircuitStatus {
        name: a.name().to_string(),
        redis: a.location(),
        state: s.state.as_str().to_string(),
        generation: s.record.as_ref().map(|r| r.generation as f64),
        tripped_by: open.map(|r| r.by.clone()),
        command: s.command.as_ref().map(|c| c.command.as_str().to_string()),
        command_by: s.command.as_ref().map(|c| c.by.clone()),
        command_at_ms: s.command.as_ref().map(|c| c.at_ms as f64),
        replicas: s.replicas as f64,
        refused: s.refused.map(|r| r.as_str().to_string()),
        signed: a.signs(),
    }
}

/// Runs `op` ('status', or a command for every replica, then the status) on the fleet
/// circuit that `options` and `envVars` describe (its name, redisUrl, signingSecret),
/// validated as createBreaker validates them (ECONFIG otherwise). `by` names the operator
/// in the replicas' logs.
#[napi(
    ts_args_type = "options: BreakerOptions | undefined | null, envVars: Record<string, string> | undefined | null, op: 'status' | 'open' | 'close' | 'disable' | 'enable', by: string",
    ts_return_type = "Promise<FleetCircuitStatus>"
)]
pub fn fleet_circuit<'env>(
    env: &'env Env,
    options: Option<Object>,
    env_vars: Option<HashMap<String, String>>,
    op: String,
    by: String,
) -> Result<Unknown<'env>> {
    let raw = convert::raw_options(options.as_ref())?;
    let cfg = Config::resolve(&raw, &convert::env_lookup(env_vars))
        .map_err(|e| throw(env, Code::Config, &e.message))?;
    let command = match op.as_str() {
        "status" => None,
        other => Some(Control::parse(other).ok_or_else(|| {
            throw(
                env,
                Code::Invalid,
                &format!(
                    "unknown circuit operation {other:?}: status, open, close, disable or enable"
                ),
            )
        })?),
    };
    let admin = FleetAdmin::new(&cfg).map_err(|m| throw(env, Code::Config, &m))?;
    bridge::start_io(cfg.io_threads).map_err(|m| throw(env, Code::Internal, &m))?;
    let run = async move {
        let out = async {
            if let Some(c) = command {
                admin.command(c, &by, now_ms()).await?;
            }
            let s = admin.status(now_ms(), SEEN_FOR).await?;
            Ok::<_, String>(status(&admin, s))
        }
        .await;
        admin.close();
        out.map_err(|m| Error::new(Status::GenericFailure, m))
    };
    bridge::promise(env, async move { settle_with(run.await) }, Run::Io)
}
