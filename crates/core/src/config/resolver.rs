//! How one setting is read: from the options (which win) or the environment (which fills
//! the gaps), with the errors that name the option or variable and its accepted range.
//! Every parser of the table (`mod.rs` and its neighbours) goes through these.

use std::time::Duration;

use super::{BoolSpec, ConfigError, IntSpec, RawOptions, RawValue, StrSpec, TlsInput};
use crate::text::printable;

/// Reads settings from the options (which win) and the environment (which fills the gaps).
pub(super) struct Resolver<'a> {
    pub(super) opts: &'a RawOptions,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

pub(super) fn err(key: &str, message: String) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message,
    }
}

impl Resolver<'_> {
    /// Where an integer setting was given (its option or variable name), `None` when it
    /// takes its default: for settings that only mean something beside another one.
    pub(super) fn int_source(&self, s: &IntSpec) -> Option<&'static str> {
        if self.opts.get(s.option).is_some() {
            Some(s.option)
        } else if (self.env)(s.env).is_some_and(|v| !v.trim().is_empty()) {
            Some(s.env)
        } else {
            None
        }
    }

    /// How a message about a setting checked against another names it: its variable when
    /// the environment gave it, else its option name (given, or the default's).
    pub(super) fn int_label(&self, s: &IntSpec) -> &'static str {
        self.int_source(s).unwrap_or(s.option)
    }

    /// [`Resolver::int_label`] for a header list (as `headers` reads it).
    pub(super) fn list_label(&self, s: &StrSpec) -> &'static str {
        if self.opts.get(s.option).is_some() {
            return s.option;
        }
        s.env
            .iter()
            .find(|v| (self.env)(v).is_some())
            .copied()
            .unwrap_or(s.option)
    }

    pub(super) fn int(&self, s: &IntSpec) -> Result<u64, ConfigError> {
        let range = format!("an integer from {} to {} ({})", s.min, s.max, s.unit);
        if let Some(v) = self.opts.get(s.option) {
            return match v {
                RawValue::Number(n)
                    if n.is_finite()
                        && n.fract() == 0.0
                        && *n >= s.min as f64
                        && *n <= s.max as f64 =>
                {
                    Ok(*n as u64)
                }
                // `timeout: process.env.X || 3000` hands a string over: parsed as the
                // environment's value would be, so both sources accept the same text.
                RawValue::String(t) => match parse_uint(t) {
                    Some(n) if n >= s.min && n <= s.max => Ok(n),
                    _ => Err(err(
                        s.option,
                        format!(
                            "invalid option `{}`: must be {range} (or its decimal string), got {:?}",
                            s.option,
                            truncate(t)
                        ),
                    )),
                },
                other => Err(err(
                    s.option,
                    format!(
                        "invalid option `{}`: must be {range}, got {}",
                        s.option,
                        other.describe()
                    ),
                )),
            };
        }
        // An empty variable (`DNASTORE_TIMEOUT_MS=` in a .env file) means "unset".
        if let Some(raw) = (self.env)(s.env).filter(|v| !v.trim().is_empty()) {
            let t = raw.trim();
            return match parse_uint(t) {
                Some(n) if n >= s.min && n <= s.max => Ok(n),
                _ => Err(err(
                    s.env,
                    format!(
                        "invalid environment variable {}={:?}: must be {range}",
                        s.env,
                        truncate(t)
                    ),
                )),
            };
        }
        Ok(s.default)
    }

    pub(super) fn ms(&self, s: &IntSpec) -> Result<Duration, ConfigError> {
        self.int(s).map(Duration::from_millis)
    }

    pub(super) fn boolean(&self, s: &BoolSpec) -> Result<bool, ConfigError> {
        if let Some(v) = self.opts.get(s.option) {
            return match v {
                RawValue::Bool(b) => Ok(*b),
                other => Err(err(
                    s.option,
                    format!(
                        "invalid option `{}`: must be true or false, got {}",
                        s.option,
                        other.describe()
                    ),
                )),
            };
        }
        if let Some(raw) = (self.env)(s.env).filter(|v| !v.trim().is_empty()) {
            return match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(err(
                    s.env,
                    format!(
                        "invalid environment variable {}={:?}: must be true/false/1/0",
                        s.env,
                        truncate(&raw)
                    ),
                )),
            };
        }
        Ok(s.default)
    }

    /// The raw string and the key it came from (for error messages).
    pub(super) fn string(&self, s: &StrSpec) -> Result<Option<(String, String)>, ConfigError> {
        if let Some(v) = self.opts.get(s.option) {
            return match v {
                RawValue::String(x) => Ok(Some((x.clone(), format!("option `{}`", s.option)))),
                // A secret's value is never repeated, whatever its type.
                other => Err(err(
                    s.option,
                    format!(
                        "invalid option `{}`: must be a string, got {}",
                        s.option,
                        if s.secret {
                            other.kind().to_string()
                        } else {
                            other.describe()
                        }
                    ),
                )),
            };
        }
        for var in s.env {
            if let Some(raw) = (self.env)(var) {
                if !raw.is_empty() {
                    return Ok(Some((raw, format!("environment variable {var}"))));
                }
            }
        }
        Ok(s.default.map(|d| (d.to_string(), "default".to_string())))
    }

    /// A header-name list: lower-cased, validated, deduplicated; the key it came from.
    pub(super) fn headers(&self, s: &StrSpec) -> Result<Vec<String>, ConfigError> {
        let (items, key, src): (Vec<String>, &str, String) = match self.opts.get(s.option) {
            Some(RawValue::List(v)) => (v.clone(), s.option, format!("option `{}`", s.option)),
            Some(RawValue::String(x)) => (
                x.split(',').map(str::to_string).collect(),
                s.option,
                format!("option `{}`", s.option),
            ),
            Some(other) => {
                return Err(err(
                    s.option,
                    format!(
                        "invalid option `{}`: must be an array of header names or a comma-separated string, got {}",
                        s.option,
                        other.describe()
                    ),
                ))
            }
            None => match s.env.iter().find_map(|v| (self.env)(v).map(|raw| (raw, *v))) {
                Some((raw, var)) => (
                    raw.split(',').map(str::to_string).collect(),
                    var,
                    format!("environment variable {var}"),
                ),
                None => return Ok(Vec::new()),
            },
        };
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let name = item.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(err(
                    key,
                    format!(
                        "invalid {src}: {} is not a valid HTTP header name",
                        printable(&name)
                    ),
                ));
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }
}

/// The option name or the environment variable a value came from (`src` as `string` says it).
pub(super) fn key_of(s: &StrSpec, src: &str) -> &'static str {
    s.env
        .iter()
        .find(|e| src.ends_with(*e))
        .copied()
        .unwrap_or(s.option)
}

/// A non-negative decimal integer, surrounding blanks allowed (`" 3000 "`); nothing else
/// (no sign, fraction, exponent or hex): the one reading of numeric text, env or option.
pub(super) fn parse_uint(raw: &str) -> Option<u64> {
    let t = raw.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().ok()
    } else {
        None
    }
}

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Where a setting's value came from, as its errors name it: `option \`caCert\`` or
/// `environment variable DNASTORE_CA_CERT`, keyed by that option or variable. Kept for the
/// settings whose value is only checked when a breaker is built (the files they name are
/// read then, by the feature that uses them), so those errors read as the table's do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The option name or the environment variable ([`ConfigError::key`]).
    pub key: &'static str,
    /// How the message names it.
    pub source: String,
}

impl Origin {
    pub(super) fn of(s: &StrSpec, source: &str) -> Self {
        Self {
            key: key_of(s, source),
            source: source.to_string(),
        }
    }

    /// The option's own name, for a value with no recorded origin.
    pub(super) fn option(s: &StrSpec) -> Self {
        Self {
            key: s.option,
            source: format!("option `{}`", s.option),
        }
    }

    /// `invalid <source>: <why>`, keyed by the option or variable.
    pub fn invalid(&self, why: &str) -> ConfigError {
        err(self.key, format!("invalid {}: {why}", self.source))
    }
}

/// Where the settings that name files came from: the files are read when a breaker is
/// built (`breaker/files.rs`, by the features that use them), and a file that does not
/// load fails with the ECONFIG the table's own checks give, naming that option or variable.
///
/// Not part of the configuration's value: two breakers given the same file, one by option
/// and one by variable, have the same options (`registry::open` compares configurations).
#[derive(Clone, Debug, Default)]
pub struct Origins {
    pub ca_cert: Option<Origin>,
    pub client_cert: Option<Origin>,
    pub client_key: Option<Origin>,
    pub redis_ca_file: Option<Origin>,
}

impl PartialEq for Origins {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Origins {
    /// The origin of a TLS input (its option's name when none was recorded).
    pub fn tls(&self, input: TlsInput) -> Origin {
        let (given, spec) = match input {
            TlsInput::Ca => (&self.ca_cert, &super::tls::CA_CERT),
            TlsInput::Cert => (&self.client_cert, &super::tls::CLIENT_CERT),
            TlsInput::Key => (&self.client_key, &super::tls::CLIENT_KEY),
        };
        given.clone().unwrap_or_else(|| Origin::option(spec))
    }

    /// The origin of `redisCaFile` (its option's name when none was recorded).
    pub fn redis_ca_file(&self) -> Origin {
        self.redis_ca_file
            .clone()
            .unwrap_or_else(|| Origin::option(&super::redis::REDIS_CA_FILE))
    }
}
