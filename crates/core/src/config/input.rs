//! What arrives and what the table is made of: untyped values ([`RawValue`], [`RawOptions`]),
//! the spec of one setting of each kind, and the error that names a rejected one.

use std::fmt;

use crate::error::{CallError, Code};

/// A value as it came from JS (or a Rust caller), before validation.
#[derive(Clone, Debug, PartialEq)]
pub enum RawValue {
    Number(f64),
    String(String),
    Bool(bool),
    /// An array of strings (header lists).
    List(Vec<String>),
    /// Any other JS type, by its `typeof` name.
    Other(&'static str),
}

impl RawValue {
    pub(super) fn describe(&self) -> String {
        match self {
            RawValue::Number(n) => format!("{n}"),
            RawValue::String(_) => "a string".into(),
            RawValue::Bool(b) => format!("{b}"),
            RawValue::List(_) => "an array".into(),
            RawValue::Other(t) => format!("a value of type {t}"),
        }
    }

    /// The value's kind only, for settings whose values are never echoed (secrets).
    pub(super) fn kind(&self) -> &'static str {
        match self {
            RawValue::Number(_) => "a number",
            RawValue::String(_) => "a string",
            RawValue::Bool(_) => "a boolean",
            RawValue::List(_) => "an array",
            RawValue::Other(t) => t,
        }
    }
}

/// Options as given by the caller: name -> value, `undefined`/`null` already dropped.
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    pub(super) entries: Vec<(String, RawValue)>,
}

impl RawOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, key: &str, value: RawValue) -> Self {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: &str, value: RawValue) {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_string(), value));
    }

    pub(super) fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A rejected option or environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The option name (`timeout`) or the environment variable (`DNASTORE_TIMEOUT_MS`).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for CallError {
    fn from(e: ConfigError) -> Self {
        CallError::new(Code::Config, e.message)
    }
}

/// One integer setting.
#[derive(Clone, Copy, Debug)]
pub struct IntSpec {
    pub option: &'static str,
    pub env: &'static str,
    pub default: u64,
    pub min: u64,
    pub max: u64,
    pub unit: &'static str,
    pub doc: &'static str,
}

/// One boolean setting.
#[derive(Clone, Copy, Debug)]
pub struct BoolSpec {
    pub option: &'static str,
    pub env: &'static str,
    pub default: bool,
    pub doc: &'static str,
}

/// One string setting (no range; validated by its own parser).
#[derive(Clone, Copy, Debug)]
pub struct StrSpec {
    pub option: &'static str,
    /// Environment variables, first set wins.
    pub env: &'static [&'static str],
    pub default: Option<&'static str>,
    /// Secret values are never echoed in errors.
    pub secret: bool,
    pub doc: &'static str,
}
