//! One fire() for both entry points (the `NativeBreaker` method and the fast path of
//! `fast`): admission, the open circuit's answers, the call's future and its promise.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dnastore_core::config::{call_ms, spec};
use dnastore_core::own_runtime::LoneRoute;
use dnastore_core::{Breaker, Call, CallOutcome, CancellationToken, Code};
use futures_util::FutureExt;
use napi::bindgen_prelude::*;

use crate::bridge::{self, Run, Settle};
use crate::convert::{self, NativeOutcome, Resolved};

/// Runs a fire() future for a Promise; a panic inside (in the core or in the conversion)
/// resolves to a rejection outcome with code EINTERNAL, which the facade turns into a
/// rejected Promise: never a crashed process.
pub fn guarded(
    fut: impl Future<Output = CallOutcome> + Send + 'static,
    full: bool,
) -> impl Future<Output = Resolved> + Send + 'static {
    guarded_traced(fut, full, None)
}

/// [`guarded`], with the call's attempts and retries in the outcome when it is traced.
pub fn guarded_traced(
    fut: impl Future<Output = CallOutcome> + Send + 'static,
    full: bool,
    trace: Option<Arc<dnastore_core::CallTrace>>,
) -> impl Future<Output = Resolved> + Send + 'static {
    AssertUnwindSafe(async move { convert::outcome_traced(fut.await, full, trace.as_deref()) })
        .catch_unwind()
        .map(|r| {
            r.unwrap_or_else(|_| {
                Resolved::from(convert::rejection(dnastore_core::CallError::new(
                    Code::Internal,
                    "internal error in dnastore-breaker (a bug; please report it)",
                )))
            })
        })
}

pub type FireResult<'env> = Either3<Null, NativeOutcome, Unknown<'env>>;

/// One JS handle's lifecycle, shared with its fast-path functions.
pub struct HandleState {
    /// Read on every call: one atomic load (a token's `is_cancelled` takes a lock).
    closed: AtomicBool,
    /// Cancelled by shutdown(): this handle's calls still running settle with ESHUTDOWN.
    stop: CancellationToken,
    /// Whether lone calls run on the JS thread: while they are quick (`bridge::Run`).
    lone: Arc<LoneRoute>,
}

impl HandleState {
    pub fn new(b: &Breaker) -> Arc<Self> {
        Arc::new(Self {
            closed: AtomicBool::new(false),
            stop: b.stop_token(),
            lone: Arc::default(),
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the handle: its calls still running settle with ESHUTDOWN, later ones reject
    /// with it. False if it was closed already.
    pub fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.stop.cancel();
        true
    }
}

/// fire()'s `init`, as the facade passes it (already type-checked there).
#[derive(Default)]
pub struct FireInit {
    pub method: Option<String>,
    /// Flattened: `[name, value, name, value, ...]`.
    pub headers: Option<Vec<String>>,
    pub body: Option<Either<String, Uint8Array>>,
    pub timeout: Option<f64>,
    pub deadline: Option<f64>,
    pub full_response: Option<bool>,
    /// The facade's number for a call with an AbortSignal (`abortCall(id)` cancels it).
    pub abort_id: Option<f64>,
    pub route: Option<String>,
    /// `init.durable`: queue the write if it cannot be delivered now.
    pub durable: Option<bool>,
    /// `init.orderingKey` of a durable write.
    pub ordering_key: Option<String>,
    /// The facade traces this call: report its attempts and retries in the outcome.
    pub trace: Option<bool>,
}

/// The open-circuit check before any argument crosses: true when the call was
/// short-circuited and the facade should resolve the `none` fallback; false when it must go
/// through fire() (closed, half-open, or a cache may answer).
pub fn try_reject(b: &Breaker, handle: &HandleState) -> bool {
    !handle.is_closed() && b.try_short_circuit()
}

/// fire(url, init) for the fast path (`fast`).
///
/// The permit `admit` returns is a guard: if anything below fails or panics before the
/// call future owns it, dropping it gives a half-open trial slot back (issue 11, defect 2).
pub fn fire<'env>(
    env: &'env Env,
    b: &Arc<Breaker>,
    handle: &HandleState,
    url: String,
    a: FireInit,
) -> Result<FireResult<'env>> {
    if handle.is_closed() {
        return Ok(Either3::B(convert::rejection(
            dnastore_core::CallError::new(
                Code::Shutdown,
                format!("breaker {:?} was shut down", b.name()),
            ),
        )));
    }
    let abort = match a.abort_id.map(crate::abort::id) {
        None => None,
        Some(Some(id)) => Some(id),
        Some(None) => {
            return Ok(Either3::B(convert::rejection(
                dnastore_core::CallError::invalid("invalid abort id"),
            )))
        }
    };
    let full = a.full_response.unwrap_or(false);
    let method = a.method.as_deref();
    // Decided before admission: a durable write must be queued even when short-circuited.
    let durable = match dnastore_core::request::parse_method(method)
        .and_then(|m| b.durable_requested(a.durable, &m))
    {
        Ok(d) => d,
        Err(e) => return Ok(Either3::B(convert::rejection(e))),
    };
    let build = |b: &Breaker, req| -> std::result::Result<Call, dnastore_core::CallError> {
        let mut call = Call::new(req);
        call.timeout = a
            .timeout
            .map(|t| call_ms("init.timeout", &spec::timeout, t))
            .transpose()?;
        call.deadline = a
            .deadline
            .map(|d| call_ms("init.deadline", &spec::deadline, d))
            .transpose()?;
        call.route = a
            .route
            .as_deref()
            .map(dnastore_core::text::route_template)
            .transpose()?;
        if durable {
            b.make_durable(&mut call, a.ordering_key.clone())?;
        }
        Ok(call)
    };
    // With `circuitPerRoute`, a routed call is admitted by its route's circuit (an invalid
    // route is the caller's EINVALID, before admission counts it).
    let admitted = match a.route.as_deref().filter(|_| b.routes_circuits()) {
        None => b.admit(),
        Some(r) => match dnastore_core::text::route_template(r) {
            Ok(r) => b.admit_route(Some(&r)),
            Err(e) => return Ok(Either3::B(convert::rejection(e))),
        },
    };
    let Some(permit) = admitted else {
        if durable {
            // Open: stored in the outbox (its sync runs on the I/O runtime, never here).
            let call = prepare(b, &url, method, a.headers, a.body).and_then(|r| build(b, r));
            return match call {
                Ok(mut call) => {
                    call.stop = Some(handle.stop.clone());
                    let fut = guarded(b.clone().queue_rejected(call), full);
                    let fut = async move { settle(fut.await, None) };
                    Ok(Either3::C(bridge::promise(env, fut, Run::Io)?))
                }
                // Invalid: rejected as such (admission already counted the short-circuit).
                Err(e) => Ok(Either3::B(convert::rejection(e))),
            };
        }
        // Open: no runtime, no network. Validating the request is only worth it when
        // the cache may hold an answer for it.
        if b.may_serve_cached() {
            if let Ok(req) = prepare(b, &url, method, a.headers, a.body) {
                if let Some(f) = b.rejected_now(&req) {
                    return Ok(Either3::B(convert::fallback(f)));
                }
                // A local miss with the shared Redis configured and up: a Promise that
                // settles within min(250 ms, the call's deadline).
                let deadline = a
                    .deadline
                    .and_then(|d| call_ms("init.deadline", &spec::deadline, d).ok());
                let fut = b
                    .clone()
                    .rejected_shared(req, deadline, Some(handle.stop.clone()));
                let fut = guarded(fut, full);
                let fut = async move { settle(fut.await, None) };
                return Ok(Either3::C(bridge::promise(env, fut, Run::Io)?));
            }
        }
        b.rejected(None);
        return Ok(Either3::A(Null));
    };
    let call = prepare(b, &url, method, a.headers, a.body).and_then(|r| build(b, r));
    let mut call = match call {
        Ok(c) => c,
        // The unused permit is dropped here, returning its slot.
        Err(e) => return Ok(Either3::B(convert::rejection(e))),
    };
    call.cancel = abort.map(crate::abort::register);
    call.stop = Some(handle.stop.clone());
    let trace = (a.trace == Some(true)).then(|| Arc::new(dnastore_core::CallTrace::default()));
    call.trace = trace.clone();
    // Boxed once here: the call future is large, and moving it by value through the
    // guard, the completion wrapper and the task cell costs a memcpy each time.
    let fut = guarded_traced(Box::pin(b.clone().execute(permit, call)), full, trace);
    // Durable writes stay on the I/O thread with the rest of their outbox's work (its store
    // syncs, fleet claims and delivery loop run there).
    // A call fired with others of this thread pending is never alone in its turn (the
    // hand-over sends it to the I/O thread): only the others ask the breaker's LoneRoute,
    // so its probes count lone calls, and only they read the clock to report back.
    let inline = b.config().inline_io && !durable && bridge::pending() == 0 && handle.lone.quick();
    // A call that does run on the JS thread reports how long it took.
    let lone = inline.then(|| (handle.lone.clone(), Instant::now()));
    let fut = async move {
        let out = fut.await;
        if let Some((lone, fired)) = lone {
            if bridge::inline() {
                lone.observe(fired.elapsed());
            }
        }
        settle(out, abort)
    };
    let run = if inline { Run::InlineIfLone } else { Run::Io };
    match bridge::promise(env, fut, run) {
        Ok(p) => Ok(Either3::C(p)),
        Err(e) => {
            // Never started: nothing will settle it, so its abort id goes now.
            if let Some(id) = abort {
                crate::abort::forget(id);
            }
            Err(e)
        }
    }
}

/// How a call's promise settles: with its outcome, on its JS thread, where its abort id (if
/// it has one) is forgotten first (the table is that thread's).
pub fn settle(out: Resolved, abort: Option<u64>) -> Settle {
    Box::new(move |env| {
        if let Some(id) = abort {
            crate::abort::forget(id);
        }
        // SAFETY: a settle function runs on the JS thread of `env`, with `env` alive.
        unsafe { Resolved::to_napi_value(env, out) }
    })
}

fn prepare(
    b: &Breaker,
    url: &str,
    method: Option<&str>,
    headers: Option<Vec<String>>,
    body: Option<Either<String, Uint8Array>>,
) -> std::result::Result<dnastore_core::request::PreparedRequest, dnastore_core::CallError> {
    let pairs: Vec<(String, String)> = match headers {
        Some(flat) => {
            let mut it = flat.into_iter();
            let mut v = Vec::with_capacity(it.len() / 2);
            while let (Some(k), Some(val)) = (it.next(), it.next()) {
                v.push((k, val));
            }
            v
        }
        None => Vec::new(),
    };
    let body = body.map(|b| match b {
        Either::A(s) => Bytes::from(s),
        Either::B(u) => Bytes::copy_from_slice(&u),
    });
    b.prepare(url, method, &pairs, body)
}
