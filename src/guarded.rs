//! `NativeCircuit`: the native half of the opossum-compatible `CircuitBreaker` class
//! (lib/circuit-breaker.js). Thin adapters over `dnastore_core::guarded::Guarded`: each
//! per-call method is synchronous and answers a plain number, so the success path builds
//! no Promise and no Error natively. `admit` and `record` are also offered as plain napi
//! functions bound to the circuit (`fastPath()`, see `bound`): a class method's
//! napi-rs glue was most of their cost (bench/wrapped.js).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

use dnastore_core::config::Config;
use dnastore_core::guarded::{
    Guarded, GuardedBucket, GuardedConfig, Note, Outcome, Refusal, PERCENTILES,
};
use dnastore_core::{Code, StateKind, Transition};
use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::bound;
use crate::convert;
use crate::throw::throw;

/// Why `admit()` refused a call (its answer is a slot number, >= 0, otherwise).
#[napi]
pub enum Admission {
    /// EOPENBREAKER: open, or half-open with its trial running.
    Open = -1,
    /// ESEMLOCKED: `capacity` calls are running.
    Capacity = -2,
    /// ESHUTDOWN.
    Shutdown = -3,
}

/// How the wrapped action ended, for `record()`.
#[napi]
pub enum CallResult {
    Success = 0,
    Failure = 1,
    Timeout = 2,
    /// Thrown, but the errorFilter calls it healthy.
    Filtered = 3,
    /// Timed out, and the errorFilter calls that healthy: counted as a timeout only.
    FilteredTimeout = 4,
}

/// Counters kept beside the circuit, for `note()`.
#[napi]
pub enum CallNote {
    Fire = 0,
    CacheHit = 1,
    CacheMiss = 2,
    CoalesceHit = 3,
    CoalesceMiss = 4,
    Fallback = 5,
}

/// A state change: the event name (`open` | `halfOpen` | `close`) and the same fields a
/// fetch breaker's transition event and log line carry.
#[napi(object)]
pub struct CircuitTransition {
    pub name: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub failures: f64,
    pub calls: f64,
    pub failure_rate: f64,
    pub slow_calls: f64,
    pub slow_call_rate: f64,
    pub consecutive_failures: u32,
    pub time_in_previous_ms: f64,
    pub trips: f64,
}

impl From<Transition> for CircuitTransition {
    fn from(t: Transition) -> Self {
        Self {
            name: t.to.event_name().into(),
            from: t.from.as_str().into(),
            to: t.to.as_str().into(),
            reason: t.reason.as_str().into(),
            failures: t.failures as f64,
            calls: t.calls as f64,
            failure_rate: t.failure_percent,
            slow_calls: t.slow_calls as f64,
            slow_call_rate: t.slow_percent,
            consecutive_failures: t.consecutive_failures,
            time_in_previous_ms: t.time_in_previous.as_secs_f64() * 1000.0,
            trips: t.trips as f64,
        }
    }
}

/// Counts over the rolling window, in opossum's `stats` names where it has them.
#[napi(object)]
pub struct CircuitStats {
    pub fires: f64,
    pub successes: f64,
    pub failures: f64,
    pub timeouts: f64,
    /// Errors the errorFilter accepted (opossum counts them as successes).
    pub filtered: f64,
    pub rejects: f64,
    pub fallbacks: f64,
    pub semaphore_rejections: f64,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub coalesce_cache_hits: f64,
    pub coalesce_cache_misses: f64,
    pub latency_mean: f64,
    /// `[percentile, ms]` pairs.
    pub percentiles: Vec<Vec<f64>>,
    pub failure_rate: Option<f64>,
    pub consecutive_failures: u32,
    pub trips: f64,
}

/// One bucket of the rolling window, the current one first (opossum's `status.window`).
#[napi(object)]
pub struct CircuitBucket {
    pub fires: f64,
    pub successes: f64,
    pub failures: f64,
    pub timeouts: f64,
    pub filtered: f64,
    pub rejects: f64,
    pub fallbacks: f64,
    pub semaphore_rejections: f64,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub coalesce_cache_hits: f64,
    pub coalesce_cache_misses: f64,
}

impl From<GuardedBucket> for CircuitBucket {
    fn from(b: GuardedBucket) -> Self {
        let c = b.circuit.counts;
        Self {
            fires: b.circuit.fires as f64,
            successes: c.successes as f64,
            failures: c.failures as f64,
            timeouts: c.timeouts as f64,
            filtered: c.client_errors as f64,
            rejects: b.circuit.rejects as f64,
            fallbacks: b.circuit.fallbacks as f64,
            semaphore_rejections: b.semaphore_rejections as f64,
            cache_hits: b.cache_hits as f64,
            cache_misses: b.cache_misses as f64,
            coalesce_cache_hits: b.coalesce_hits as f64,
            coalesce_cache_misses: b.coalesce_misses as f64,
        }
    }
}

/// The class's settings beyond the table's circuit options.
#[napi(object)]
pub struct CircuitExtras {
    /// Most calls running at once; absent: unbounded.
    pub capacity: Option<f64>,
    /// The first rollingCountTimeout cannot open the circuit (`allowWarmUp`).
    pub warm_up: Option<bool>,
    /// Any failure opens the circuit (opossum's `errorThresholdPercentage: 0`, which the
    /// table, from 1 %, does not express).
    pub any_failure: Option<bool>,
    /// The window's buckets move on `rotate()` only (a `rotateBucketController`).
    pub rotated_by_caller: Option<bool>,
}

#[napi]
pub struct NativeCircuit {
    inner: Arc<Guarded>,
}

#[napi]
impl NativeCircuit {
    /// `options`: the circuit options of the createBreaker table (errorThresholdPercentage,
    /// resetTimeout, rollingCountTimeout, rollingCountBuckets, volumeThreshold, maxFailures,
    /// halfOpenMaxCalls, timeout), validated there; environment variables do not apply.
    /// `name` labels the metric series.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        name: String,
        options: Option<Object>,
        extras: CircuitExtras,
    ) -> Result<Self> {
        let raw = convert::raw_options(options.as_ref())?;
        let config =
            Config::resolve(&raw, &|_| None).map_err(|e| throw(&env, Code::Config, &e.message))?;
        let mut cfg = GuardedConfig::new(&config, &name);
        cfg.capacity = extras
            .capacity
            .map(|c| c.max(0.0).min(usize::MAX as f64) as usize);
        cfg.warm_up = extras.warm_up == Some(true);
        if extras.any_failure == Some(true) {
            cfg.circuit.error_threshold_percentage = 0;
        }
        cfg.circuit.rotated_by_caller = extras.rotated_by_caller == Some(true);
        Ok(Self {
            inner: Guarded::shared(cfg),
        })
    }

    /// A slot (>= 0) to `record()` the call's end with, or an `Admission` (< 0).
    #[napi]
    pub fn admit(&self) -> i32 {
        admit(&self.inner)
    }

    /// `{ admit, record, note }`: the same calls as the methods, as functions bound to this circuit.
    #[napi(
        ts_return_type = "{ admit: () => number; record: (slot: number, result: CallResult) => boolean; note: (note: CallNote) => void }"
    )]
    pub fn fast_path<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let mut obj = Object::new(env)?;
        obj.set_named_property(
            "admit",
            bound::bind(env, "admit", admit_cb, self.inner.clone())?,
        )?;
        obj.set_named_property(
            "record",
            bound::bind(env, "record", record_cb, self.inner.clone())?,
        )?;
        obj.set_named_property(
            "note",
            bound::bind(env, "note", note_cb, self.inner.clone())?,
        )?;
        Ok(obj)
    }

    /// Records the end of `slot`'s call; answers whether transitions wait
    /// (`takeTransitions()`). A slot already recorded (a late result after its timeout)
    /// is ignored; a call admitted before shutdown() still records its end.
    #[napi]
    pub fn record(&self, slot: u32, result: CallResult) -> bool {
        record(&self.inner, slot, result as i32)
    }

    #[napi]
    pub fn note(&self, note: CallNote) {
        self.inner.note(note_of(note as i32));
    }

    /// Whether `fallback()` set a function: an open circuit's refusals then count it.
    #[napi]
    pub fn set_fallback_on_refusal(&self, on: bool) {
        self.inner.set_fallback_on_refusal(on);
    }

    #[napi]
    pub fn take_transitions(&self) -> Vec<CircuitTransition> {
        self.inner
            .take_transitions()
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// 'closed' | 'open' | 'halfOpen'
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.inner.state().as_str()
    }

    /// Moves the circuit by hand; answers whether it moved.
    #[napi(ts_args_type = "to: 'open' | 'halfOpen' | 'closed'")]
    pub fn force(&self, to: String) -> bool {
        let to = match to.as_str() {
            "open" => StateKind::Open,
            "halfOpen" => StateKind::HalfOpen,
            _ => StateKind::Closed,
        };
        self.inner.force(to)
    }

    /// An operator's command ('open' | 'close' | 'disable' | 'enable', as the fetch
    /// breaker's); answers whether it changed the state.
    #[napi(ts_args_type = "op: 'open' | 'close' | 'disable' | 'enable'")]
    pub fn control(&self, env: Env, op: String) -> Result<bool> {
        let c = crate::control::parse(&env, &op)?;
        Ok(self.inner.control(c))
    }

    /// Half-opens an open circuit whose resetTimeout elapsed. Answers the ms still to wait
    /// (the reset timer fired early), or null.
    #[napi]
    pub fn poll_half_open(&self) -> Option<f64> {
        self.inner
            .poll_half_open()
            .map(|d| d.as_secs_f64() * 1000.0)
    }

    #[napi(getter)]
    pub fn warming_up(&self) -> bool {
        self.inner.warming_up()
    }

    #[napi]
    pub fn stats(&self) -> CircuitStats {
        let s = self.inner.stats();
        let c = &s.circuit;
        CircuitStats {
            fires: c.fires as f64,
            successes: c.successes as f64,
            failures: c.failures as f64,
            timeouts: c.timeouts as f64,
            filtered: c.client_errors as f64,
            rejects: c.rejects as f64,
            fallbacks: c.fallbacks as f64,
            semaphore_rejections: s.semaphore_rejections as f64,
            cache_hits: s.cache_hits as f64,
            cache_misses: s.cache_misses as f64,
            coalesce_cache_hits: s.coalesce_hits as f64,
            coalesce_cache_misses: s.coalesce_misses as f64,
            latency_mean: s.latency_mean_ms,
            percentiles: PERCENTILES
                .iter()
                .zip(s.percentiles_ms)
                .map(|(p, v)| vec![*p, v])
                .collect(),
            failure_rate: c.failure_rate,
            consecutive_failures: c.consecutive_failures,
            trips: c.trips as f64,
        }
    }

    /// The window bucket by bucket, the current one first.
    #[napi]
    pub fn buckets(&self) -> Vec<CircuitBucket> {
        self.inner.buckets().into_iter().map(Into::into).collect()
    }

    /// Moves a caller-rotated window one bucket on; answers whether it is one.
    #[napi]
    pub fn rotate(&self) -> bool {
        self.inner.rotate()
    }

    /// Calls running now (admitted, not yet recorded).
    #[napi(getter)]
    pub fn running(&self) -> u32 {
        self.inner.running().min(u32::MAX as usize) as u32
    }

    #[napi]
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

fn admit(g: &Guarded) -> i32 {
    match g.admit() {
        Ok(slot) => slot as i32,
        Err(Refusal::Open) => Admission::Open as i32,
        Err(Refusal::Capacity) => Admission::Capacity as i32,
        Err(Refusal::Shutdown) => Admission::Shutdown as i32,
    }
}

/// `result` as `CallResult`'s values; any other number is a failure.
fn record(g: &Guarded, slot: u32, result: i32) -> bool {
    let outcome = match result {
        0 => Outcome::Success,
        2 => Outcome::Timeout,
        3 => Outcome::Filtered,
        4 => Outcome::FilteredTimeout,
        _ => Outcome::Failure,
    };
    g.record(slot, outcome);
    g.has_transitions()
}

unsafe extern "C" fn admit_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: napi's own callback arguments, for a function `bind` made with an Arc<Guarded>.
    let r = unsafe {
        bound::with_args::<Arc<Guarded>, 0, _>(env, info, |g, _| {
            catch_unwind(AssertUnwindSafe(|| admit(g)))
        })
    };
    match r {
        Some(Ok(v)) => {
            let mut out = ptr::null_mut();
            // SAFETY: called from this napi callback with its env; the out-pointer is a local.
            unsafe { sys::napi_create_int32(env, v, &mut out) };
            out
        }
        Some(Err(_)) => bound::throw(
            env,
            Code::Internal,
            "internal error in dnastore-breaker (a bug; please report it)",
        ),
        None => bound::throw(env, Code::Internal, "admit: napi_get_cb_info failed"),
    }
}

unsafe extern "C" fn record_cb(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let call = |g: &Arc<Guarded>, [slot, result]: [sys::napi_value; 2]| {
        let (mut s, mut r) = (0u32, 1i32);
        // SAFETY: argument values of this callback, in its scope; the out-pointers are locals.
        // A non-number leaves the defaults: slot 0 / failure, as the facade never passes one.
        let ok = unsafe {
            sys::napi_get_value_uint32(env, slot, &mut s) == sys::Status::napi_ok
                && sys::napi_get_value_int32(env, result, &mut r) == sys::Status::napi_ok
        };
        ok.then(|| catch_unwind(AssertUnwindSafe(|| record(g, s, r))))
    };
    // SAFETY: napi's own callback arguments, for a function `bind` made with an Arc<Guarded>.
    match unsafe { bound::with_args::<Arc<Guarded>, 2, _>(env, info, call) } {
        Some(Some(Ok(moved))) => bound::boolean(env, moved),
        Some(None) => bound::throw(
            env,
            Code::Invalid,
            "record(slot, result): two numbers expected",
        ),
        Some(Some(Err(_))) => bound::throw(
            env,
            Code::Internal,
            "internal error in dnastore-breaker (a bug; please report it)",
        ),
        None => bound::throw(env, Code::Internal, "record: napi_get_cb_info failed"),
    }
}

/// `CallNote`'s values; any other number counts a fire.
fn note_of(n: i32) -> Note {
    match n {
        1 => Note::CacheHit,
        2 => Note::CacheMiss,
        3 => Note::CoalesceHit,
        4 => Note::CoalesceMiss,
        5 => Note::Fallback,
        _ => Note::Fire,
    }
}

unsafe extern "C" fn note_cb(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let call = |g: &Arc<Guarded>, [note]: [sys::napi_value; 1]| {
        let mut n = 0i32;
        // SAFETY: an argument value of this callback, in its scope; the out-pointer is a local.
        let ok = unsafe { sys::napi_get_value_int32(env, note, &mut n) } == sys::Status::napi_ok;
        ok.then(|| catch_unwind(AssertUnwindSafe(|| g.note(note_of(n)))))
    };
    // SAFETY: napi's own callback arguments, for a function `bind` made with an Arc<Guarded>.
    match unsafe { bound::with_args::<Arc<Guarded>, 1, _>(env, info, call) } {
        Some(Some(Ok(()))) => ptr::null_mut(),
        Some(None) => bound::throw(env, Code::Invalid, "note(n): a number expected"),
        Some(Some(Err(_))) => bound::throw(
            env,
            Code::Internal,
            "internal error in dnastore-breaker (a bug; please report it)",
        ),
        None => bound::throw(env, Code::Internal, "note: napi_get_cb_info failed"),
    }
}
