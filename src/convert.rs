//! JS values <-> core types.

use std::collections::HashMap;

use bytes::Bytes;
use dnastore_core::config::RawValue;
use dnastore_core::{
    BulkheadStats as CoreBulkhead, CallOutcome, CallTrace, Code, HedgeStats as CoreHedges,
    RawOptions, Stats,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Options object -> untyped core options (the core validates types and ranges).
pub fn raw_options(obj: Option<&Object>) -> Result<RawOptions> {
    let mut out = RawOptions::new();
    let Some(obj) = obj else { return Ok(out) };
    for key in Object::keys(obj)? {
        let v: Unknown = obj.get_named_property(&key)?;
        let raw = match v.get_type()? {
            ValueType::Undefined | ValueType::Null => continue,
            ValueType::Number => {
                // SAFETY: the value's type was just checked to be a number.
                RawValue::Number(unsafe { v.cast::<f64>() }?)
            }
            ValueType::String => {
                // SAFETY: the value's type was just checked to be a string.
                RawValue::String(unsafe { v.cast::<String>() }?)
            }
            ValueType::Boolean => {
                // SAFETY: the value's type was just checked to be a boolean.
                RawValue::Bool(unsafe { v.cast::<bool>() }?)
            }
            ValueType::Object if v.is_array()? => match string_list(&v)? {
                Some(list) => RawValue::List(list),
                None => RawValue::Other("array of non-strings"),
            },
            ValueType::Object => RawValue::Other("object"),
            ValueType::Function => RawValue::Other("function"),
            ValueType::BigInt => RawValue::Other("bigint"),
            ValueType::Symbol => RawValue::Other("symbol"),
            _ => RawValue::Other("unknown"),
        };
        out.insert(&key, raw);
    }
    Ok(out)
}

/// An array whose elements are all strings (header-name lists).
fn string_list(v: &Unknown) -> Result<Option<Vec<String>>> {
    // SAFETY: checked to be an array by the caller.
    let arr: Array = unsafe { v.cast() }?;
    let mut out = Vec::with_capacity(arr.len() as usize);
    for i in 0..arr.len() {
        let item: Unknown = arr.get_element(i)?;
        if item.get_type()? != ValueType::String {
            return Ok(None);
        }
        // SAFETY: its type was just checked.
        out.push(unsafe { item.cast::<String>() }?);
    }
    Ok(Some(out))
}

pub fn env_lookup(vars: Option<HashMap<String, String>>) -> impl Fn(&str) -> Option<String> {
    let vars = vars.unwrap_or_default();
    move |k| vars.get(k).cloned()
}

/// How a fire() ended, as the facade switches on it (`OutcomeKind.Response`, ...).
#[napi]
#[derive(PartialEq, Eq, Debug)]
pub enum OutcomeKind {
    /// The upstream answered 2xx.
    Response,
    /// Resolved with a fallback (cache or none).
    Fallback,
    /// Rejected with a code.
    Rejection,
    /// A durable write that could not be delivered now, stored in the outbox.
    Queued,
}

/// A fire() result as the facade receives it (it builds the public shapes).
#[napi(object)]
pub struct NativeOutcome {
    pub kind: OutcomeKind,
    pub code: Option<String>,
    pub message: Option<String>,
    pub status: Option<u32>,
    /// Body text (JSON text when `json`).
    pub body: Option<String>,
    pub json: bool,
    pub source: Option<String>,
    pub age_ms: Option<f64>,
    /// Response headers, only when the call asked for the full response.
    pub headers: Option<HashMap<String, String>>,
    /// Queued: the outbox entry's id.
    pub id: Option<String>,
    /// Queued: the Idempotency-Key every delivery attempt sends.
    pub idempotency_key: Option<String>,
    /// Traced calls: attempts this call sent (0: answered without one of its own).
    pub attempts: Option<u32>,
    /// Traced calls: the retries, in order.
    pub retries: Option<Vec<NativeRetry>>,
    /// Traced calls: the status of the last attempt that got an answer (a fallback after a 503).
    pub last_status: Option<u32>,
    /// Traced calls: the hedges of its attempts (hedgeAfterMs), in order.
    pub hedges: Option<Vec<NativeHedge>>,
}

/// One hedge of a traced call.
#[napi(object)]
pub struct NativeHedge {
    /// The attempt it hedged (1-based).
    pub attempt: u32,
    /// won | lost | skipped.
    pub result: String,
    /// Why it was skipped: budget | bulkhead | circuit.
    pub reason: Option<String>,
    /// When it was sent (or due), ms from the start of the call's first attempt.
    pub at_ms: f64,
}

/// One retry of a traced call.
#[napi(object)]
pub struct NativeRetry {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// The wait before the next attempt, ms.
    pub delay_ms: f64,
    /// Why it failed: a `dnastore_retries_total` reason label.
    pub reason: String,
    /// Its error code.
    pub code: String,
    /// When it was decided, ms from the start of the call's first attempt.
    pub at_ms: f64,
}

/// A successful JSON body, handed to JS as a string for `JSON.parse` (V8's parser is
/// faster than building the object through napi, one property at a time).
pub struct JsonText(pub Bytes);

impl ToNapiValue for JsonText {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        // JSON was validated by the core, and valid JSON is valid UTF-8.
        let s = std::str::from_utf8(&val.0)
            .map_err(|_| Error::from_reason("response body is not UTF-8"))?;
        // SAFETY: the caller's env (this is itself a ToNapiValue implementation).
        unsafe { <&str>::to_napi_value(env, s) }
    }
}

/// What a call's promise resolves with. The outcome is boxed: this value is moved from the
/// call's future into its completion, through the completion stack and into the settling
/// loop, and inline the outcome made every move ~300 bytes, even for the JSON text that
/// nearly every call resolves with (~1 % of the I/O thread at concurrency 50, bench/README.md).
/// Only calls that end otherwise (a fallback, a rejection, a queued write, a full
/// response) pay the box.
pub enum Resolved {
    Json(JsonText),
    Outcome(Box<NativeOutcome>),
}

impl From<NativeOutcome> for Resolved {
    fn from(n: NativeOutcome) -> Self {
        Resolved::Outcome(Box::new(n))
    }
}

impl ToNapiValue for Resolved {
    unsafe fn to_napi_value(env: napi::sys::napi_env, val: Self) -> Result<napi::sys::napi_value> {
        match val {
            // SAFETY: the caller's env (this is itself a ToNapiValue implementation).
            Resolved::Json(j) => unsafe { JsonText::to_napi_value(env, j) },
            // SAFETY: as above.
            Resolved::Outcome(n) => unsafe { NativeOutcome::to_napi_value(env, *n) },
        }
    }
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl NativeOutcome {
    /// An outcome of `kind` with its `code`; every other field unset.
    fn of(kind: OutcomeKind, code: Option<Code>) -> Self {
        Self {
            kind,
            code: code.map(|c| c.as_str().to_string()),
            message: None,
            status: None,
            body: None,
            json: false,
            source: None,
            age_ms: None,
            headers: None,
            id: None,
            idempotency_key: None,
            attempts: None,
            retries: None,
            last_status: None,
            hedges: None,
        }
    }
}

/// The outcome, with the call's attempts and retries when it was traced.
pub fn outcome_traced(o: CallOutcome, full: bool, trace: Option<&CallTrace>) -> Resolved {
    let Some(t) = trace else {
        return untraced(o, full);
    };
    let mut n = match untraced(o, true) {
        Resolved::Outcome(n) => n,
        // Not reached: a full response is never bare JSON text.
        Resolved::Json(json) => Box::new(NativeOutcome {
            status: Some(200),
            body: Some(text(&json.0)),
            json: true,
            ..NativeOutcome::of(OutcomeKind::Response, None)
        }),
    };
    let t = t.take();
    n.attempts = Some(t.attempts);
    n.last_status = t.last_status.map(u32::from);
    n.retries = Some(
        t.retries
            .into_iter()
            .map(|r| NativeRetry {
                attempt: r.attempt,
                delay_ms: r.delay.as_millis() as f64,
                reason: r.reason.label().to_string(),
                code: r.reason.code().as_str().to_string(),
                at_ms: r.at.as_secs_f64() * 1000.0,
            })
            .collect(),
    );
    n.hedges = Some(
        t.hedges
            .into_iter()
            .map(|h| NativeHedge {
                attempt: h.attempt,
                result: h.result.as_str().to_string(),
                reason: h.skip.map(|s| s.as_str().to_string()),
                at_ms: h.at.as_secs_f64() * 1000.0,
            })
            .collect(),
    );
    if !full {
        n.headers = None;
    }
    Resolved::Outcome(n)
}

fn untraced(o: CallOutcome, full: bool) -> Resolved {
    match o {
        CallOutcome::Ok(s) if s.json && !full && !s.body.is_empty() => {
            Resolved::Json(JsonText(s.body))
        }
        CallOutcome::Ok(s) => NativeOutcome {
            status: Some(s.status as u32),
            body: (!s.body.is_empty()).then(|| text(&s.body)),
            json: s.json,
            headers: full.then(|| {
                s.headers
                    .iter()
                    .filter_map(|(k, v)| {
                        v.to_str()
                            .ok()
                            .map(|v| (k.as_str().to_string(), v.to_string()))
                    })
                    .collect()
            }),
            ..NativeOutcome::of(OutcomeKind::Response, None)
        }
        .into(),
        CallOutcome::Fallback(f) => fallback(f).into(),
        CallOutcome::Queued(q) => NativeOutcome {
            id: Some(q.id),
            idempotency_key: Some(q.idempotency_key),
            ..NativeOutcome::of(OutcomeKind::Queued, Some(q.code))
        }
        .into(),
        CallOutcome::Rejected(r) => NativeOutcome {
            message: Some(r.message),
            status: r.status.map(u32::from),
            body: r.body.as_ref().map(text),
            ..NativeOutcome::of(OutcomeKind::Rejection, Some(r.code))
        }
        .into(),
    }
}

pub fn fallback(f: dnastore_core::Fallback) -> NativeOutcome {
    NativeOutcome {
        body: f.body.as_ref().map(text),
        json: f.json,
        source: Some(f.source.as_str().to_string()),
        age_ms: f.age.map(|a| a.as_millis() as f64),
        ..NativeOutcome::of(OutcomeKind::Fallback, Some(f.code))
    }
}

pub fn rejection(e: dnastore_core::CallError) -> NativeOutcome {
    NativeOutcome {
        message: Some(e.message),
        ..NativeOutcome::of(OutcomeKind::Rejection, Some(e.code))
    }
}

/// `stats()`: counts over the rolling window.
#[napi(object)]
pub struct BreakerStats {
    pub state: String,
    pub fires: f64,
    pub successes: f64,
    pub failures: f64,
    pub timeouts: f64,
    pub client_errors: f64,
    pub rejects: f64,
    pub fallbacks: f64,
    pub retries: f64,
    /// Failure percentage of the calls in the window; null while the window holds none.
    pub failure_rate: Option<f64>,
    /// Calls in the window slower than slowCallDurationMs (0 while it is off).
    pub slow_calls: f64,
    /// Slow-call percentage of the calls in the window; null while the window holds none.
    pub slow_call_rate: Option<f64>,
    pub consecutive_failures: u32,
    pub trips: f64,
    pub window_ms: f64,
    /// The bulkhead; null without maxConcurrent.
    pub bulkhead: Option<BulkheadStats>,
    /// Hedged reads over the window; absent without hedgeAfterMs.
    pub hedges: Option<HedgeStats>,
    /// The fleet circuit; null with fleetCircuit off.
    pub fleet: Option<crate::fleet::FleetStats>,
}

/// `stats().hedges`: hedges over the rolling window, by result.
#[napi(object)]
pub struct HedgeStats {
    /// Sent, and their answer was the one taken.
    pub won: f64,
    /// Sent, and another copy answered first (cancelled).
    pub lost: f64,
    /// Due but not sent: retry budget spent, bulkhead full, or circuit not closed.
    pub skipped: f64,
}

impl From<CoreHedges> for HedgeStats {
    fn from(h: CoreHedges) -> Self {
        Self {
            won: h.won as f64,
            lost: h.lost as f64,
            skipped: h.skipped as f64,
        }
    }
}

/// `stats().bulkhead`.
#[napi(object)]
pub struct BulkheadStats {
    /// Calls holding a slot (in flight to DNAStore).
    pub inflight: u32,
    /// Calls waiting for a slot.
    pub queued: u32,
    /// The current cap: maxConcurrent, or the adaptive limit.
    pub limit: u32,
    /// Calls refused so far with no slot and no queue place.
    pub rejected_concurrency: f64,
    /// Calls refused so far after queueTimeoutMs without a slot.
    pub rejected_queue_timeout: f64,
}

impl From<CoreBulkhead> for BulkheadStats {
    fn from(b: CoreBulkhead) -> Self {
        Self {
            inflight: b.inflight,
            queued: b.queued,
            limit: b.limit,
            rejected_concurrency: b.rejected_concurrency as f64,
            rejected_queue_timeout: b.rejected_queue_timeout as f64,
        }
    }
}

impl From<Stats> for BreakerStats {
    fn from(s: Stats) -> Self {
        Self {
            state: s.state.as_str().to_string(),
            fires: s.fires as f64,
            successes: s.successes as f64,
            failures: s.failures as f64,
            timeouts: s.timeouts as f64,
            client_errors: s.client_errors as f64,
            rejects: s.rejects as f64,
            fallbacks: s.fallbacks as f64,
            retries: s.retries as f64,
            failure_rate: s.failure_rate,
            slow_calls: s.slow_calls as f64,
            slow_call_rate: s.slow_call_rate,
            consecutive_failures: s.consecutive_failures,
            trips: s.trips as f64,
            window_ms: s.window.as_millis() as f64,
            bulkhead: s.bulkhead.map(Into::into),
            hedges: s.hedges.map(Into::into),
            fleet: None,
        }
    }
}
