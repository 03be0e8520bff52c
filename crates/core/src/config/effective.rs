//! The effective configuration, setting by setting, with where each value came from: what
//! `dnastore-breaker config` prints. It validates with [`Config::resolve`] first (the one
//! place), so it accepts and refuses exactly what `createBreaker` does, with the same
//! messages; then it reads each setting of the table the way the resolver did.
//!
//! Secrets never leave here in the clear: the signing secret and inline key text are
//! replaced, and credentials in the Redis, proxy and base URLs are masked, whatever the
//! setting's `secret` flag says for a URL (a base URL may carry a password too).

use url::Url;

use super::lkg::{REDIS_URL, SIGNING_SECRET};
use super::outbox::OUTBOX_REDIS_URL;
use super::resolver::{key_of, Resolver};
use super::tls::{
    pem_source, PemSource, CA_CERT, CLIENT_CERT, CLIENT_KEY, PROXY, TLS_INSECURE_ENV,
};
use super::{
    parse_base_url, Config, ConfigError, RawOptions, RedisSpec, StrSpec, BASE_URL, BOOL_SPECS,
    INT_SPECS, LIST_SPECS, STR_SPECS,
};

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// An option (or what the caller passes as one), by its name.
    Option(&'static str),
    /// An environment variable, by its name.
    Env(&'static str),
}

/// A value as it may be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    Number(u64),
    Flag(bool),
    Text(String),
    List(Vec<String>),
    /// No value and no default.
    Unset,
}

/// One setting of the table, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// `None` for a setting that only the environment can give (`DNASTORE_TLS_INSECURE`).
    pub option: Option<&'static str>,
    /// Its environment variables, first set wins.
    pub env: &'static [&'static str],
    pub unit: Option<&'static str>,
    pub value: Shown,
    pub source: Source,
    /// The value was masked (a secret, or credentials in a URL).
    pub redacted: bool,
}

/// What a masked secret shows.
pub const REDACTED: &str = "(set, redacted)";

impl Config {
    /// Every setting's effective value and source, or the error `resolve` gives.
    pub fn effective(
        opts: &RawOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Setting>, ConfigError> {
        let cfg = Self::resolve(opts, env)?;
        let r = Resolver { opts, env };
        let mut out = Vec::new();
        // Valid by now: every read below succeeds as it did in `resolve`.
        for s in STR_SPECS {
            let (value, source, redacted) = match r.string(s)? {
                None => (Shown::Unset, Source::Default, false),
                Some((raw, src)) => {
                    let (text, redacted) = shown_text(s, &raw);
                    (Shown::Text(text), source_of(s, &src), redacted)
                }
            };
            out.push(Setting {
                option: Some(s.option),
                env: s.env,
                unit: None,
                value,
                source,
                redacted,
            });
        }
        for s in INT_SPECS {
            let source = match r.int_source(s) {
                Some(k) if k == s.option => Source::Option(s.option),
                Some(k) => Source::Env(k),
                None => Source::Default,
            };
            out.push(Setting {
                option: Some(s.option),
                env: std::slice::from_ref(&s.env),
                unit: Some(s.unit),
                value: Shown::Number(r.int(s)?),
                source,
                redacted: false,
            });
        }
        for s in BOOL_SPECS {
            let source = if r.opts.get(s.option).is_some() {
                Source::Option(s.option)
            } else if (r.env)(s.env).is_some_and(|v| !v.trim().is_empty()) {
                Source::Env(s.env)
            } else {
                Source::Default
            };
            out.push(Setting {
                option: Some(s.option),
                env: std::slice::from_ref(&s.env),
                unit: None,
                value: Shown::Flag(r.boolean(s)?),
                source,
                redacted: false,
            });
        }
        for s in LIST_SPECS {
            // As `headers` reads them: the option, else the first variable present.
            let source = if r.opts.get(s.option).is_some() {
                Source::Option(s.option)
            } else {
                s.env
                    .iter()
                    .find(|v| (r.env)(v).is_some())
                    .map_or(Source::Default, |v| Source::Env(v))
            };
            out.push(Setting {
                option: Some(s.option),
                env: s.env,
                unit: None,
                value: Shown::List(r.headers(s)?),
                source,
                redacted: false,
            });
        }
        out.push(Setting {
            option: None,
            env: std::slice::from_ref(&TLS_INSECURE_ENV),
            unit: None,
            value: Shown::Flag(cfg.tls.insecure),
            source: match (r.env)(TLS_INSECURE_ENV).filter(|v| !v.trim().is_empty()) {
                Some(_) => Source::Env(TLS_INSECURE_ENV),
                None => Source::Default,
            },
            redacted: false,
        });
        Ok(out)
    }
}

/// `src` as `Resolver::string` words it.
fn source_of(s: &StrSpec, src: &str) -> Source {
    if src == "default" {
        Source::Default
    } else if src.starts_with("option") {
        Source::Option(s.option)
    } else {
        Source::Env(key_of(s, src))
    }
}

/// A valid string setting as it may be shown, and whether something was masked.
fn shown_text(s: &StrSpec, raw: &str) -> (String, bool) {
    let name = s.option;
    if name == REDIS_URL.option || name == OUTBOX_REDIS_URL.option {
        return match RedisSpec::parse(raw) {
            Ok(spec) => {
                let shown = spec.redacted();
                let masked = shown.contains("***");
                (shown, masked)
            }
            Err(_) => (REDACTED.into(), true),
        };
    }
    if name == PROXY.option {
        return match raw.trim() {
            mode @ ("off" | "env") => (mode.into(), false),
            other => match Url::parse(other) {
                Ok(u) => masked_url(u),
                Err(_) => (REDACTED.into(), true),
            },
        };
    }
    if name == BASE_URL.option {
        return match parse_base_url(raw, "", name) {
            Ok(u) => masked_url(u),
            Err(_) => (REDACTED.into(), true),
        };
    }
    if [CA_CERT.option, CLIENT_CERT.option, CLIENT_KEY.option].contains(&name) {
        return match pem_source(raw) {
            PemSource::File(p) => (p.display().to_string(), false),
            PemSource::Inline(_) if s.secret => ("(PEM text, redacted)".into(), true),
            PemSource::Inline(t) => (format!("(PEM text, {} bytes)", t.len()), false),
        };
    }
    // The signing secret, and any secret the table gains later.
    if s.secret || name == SIGNING_SECRET.option {
        return (REDACTED.into(), true);
    }
    (raw.to_string(), false)
}

/// A URL with its user name and password replaced by `***`.
fn masked_url(mut u: Url) -> (String, bool) {
    let has = !u.username().is_empty() || u.password().is_some();
    if has {
        // Only fails for URLs that cannot have credentials, which then have none.
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    (u.to_string(), has)
}

#[cfg(test)]
mod tests;
