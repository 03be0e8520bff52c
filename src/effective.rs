//! `effectiveConfig()`: every setting's effective value and where it came from, for the
//! operator CLI's `config` command. The core resolves, validates and masks
//! (`config/effective.rs`); this file converts.

use std::collections::HashMap;

use dnastore_core::breaker::check_config;
use dnastore_core::config::{Shown, Source};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::convert;

/// One setting of the table.
#[napi(object)]
pub struct ConfigSetting {
    /// The option name; null for a switch only the environment sets (DNASTORE_TLS_INSECURE).
    pub option: Option<String>,
    /// Its environment variables, first set wins.
    pub env: Vec<String>,
    pub unit: Option<String>,
    /// null when unset with no default; secrets and credentials masked.
    #[napi(ts_type = "number | boolean | string | string[] | null")]
    pub value: Option<Either4<f64, bool, String, Vec<String>>>,
    /// 'default' | 'option' | 'env'
    pub source: String,
    /// The option or variable it came from; null for a default.
    pub from: Option<String>,
    /// The value shown was masked (a secret, or credentials in a URL).
    pub redacted: bool,
}

/// What `createBreaker` would throw (ECONFIG): the option or variable, and the message.
#[napi(object)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

/// The settings, or the problem `createBreaker` would throw for these options and variables.
#[napi(object)]
pub struct EffectiveConfig {
    pub settings: Vec<ConfigSetting>,
    pub error: Option<ConfigProblem>,
}

/// The effective configuration for `options` (winning) and `envVars`, as `createBreaker`
/// would resolve it; never throws for a bad value (it is the result's `error`).
#[napi(
    catch_unwind,
    ts_args_type = "options: BreakerOptions | undefined | null, envVars: Record<string, string> | undefined | null"
)]
pub fn effective_config(
    options: Option<Object>,
    env_vars: Option<HashMap<String, String>>,
) -> Result<EffectiveConfig> {
    let raw = convert::raw_options(options.as_ref())?;
    let settings = match check_config(&raw, &convert::env_lookup(env_vars)) {
        Ok(s) => s,
        Err(e) => {
            return Ok(EffectiveConfig {
                settings: vec![],
                error: Some(ConfigProblem {
                    key: e.key,
                    message: e.message,
                }),
            })
        }
    };
    Ok(EffectiveConfig {
        settings: settings
            .into_iter()
            .map(|s| {
                let (source, from) = match s.source {
                    Source::Default => ("default", None),
                    Source::Option(o) => ("option", Some(o.to_string())),
                    Source::Env(v) => ("env", Some(v.to_string())),
                };
                ConfigSetting {
                    option: s.option.map(str::to_string),
                    env: s.env.iter().map(|v| v.to_string()).collect(),
                    unit: s.unit.map(str::to_string),
                    value: match s.value {
                        Shown::Number(n) => Some(Either4::A(n as f64)),
                        Shown::Flag(b) => Some(Either4::B(b)),
                        Shown::Text(t) => Some(Either4::C(t)),
                        Shown::List(l) => Some(Either4::D(l)),
                        Shown::Unset => None,
                    },
                    source: source.to_string(),
                    from,
                    redacted: s.redacted,
                }
            })
            .collect(),
        error: None,
    })
}
