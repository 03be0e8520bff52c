//! `NativeBreaker`: one JS handle on a core breaker from the process-wide registry.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dnastore_core::config::{call_ms, spec};
use dnastore_core::own_runtime::LoneRoute;
use dnastore_core::{registry, Breaker, Call, CallOutcome, CancellationToken, Code, Config, Deps};
use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::completion;
use crate::convert::{self, BreakerStats, NativeOutcome, Resolved};
use crate::events::{self, BreakerEvent, JsObserver};
use crate::throw::throw;

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

#[napi]
pub struct NativeBreaker {
    inner: Arc<Breaker>,
    /// Taken on shutdown so the ThreadsafeFunction is released then, not at GC.
    observer: parking_lot::Mutex<Option<Arc<JsObserver>>>,
    observer_id: u64,
    /// Shared with the fast-path functions (`fast`), which may outlive a shutdown() call.
    handle: Arc<HandleState>,
    /// Set when this breaker asked for another I/O thread count than the process runs.
    io_warning: Option<String>,
}

pub type FireResult<'env> = Either3<Null, NativeOutcome, Unknown<'env>>;

/// One JS handle's lifecycle, shared with its fast-path functions.
pub struct HandleState {
    /// Read on every call: one atomic load (a token's `is_cancelled` takes a lock).
    closed: AtomicBool,
    /// Cancelled by shutdown(): this handle's calls still running settle with ESHUTDOWN.
    stop: CancellationToken,
    /// Whether lone calls run on the JS thread: while they are quick (`src/local.rs`).
    lone: Arc<LoneRoute>,
}

impl HandleState {
    fn new(b: &Breaker) -> Arc<Self> {
        Arc::new(Self {
            closed: AtomicBool::new(false),
            stop: b.stop_token(),
            lone: Arc::default(),
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[napi]
impl NativeBreaker {
    /// Validates `options` (winning) and `envVars` (filling gaps) in the core, then opens
    /// the breaker of that name (shared with every other handle of the same name).
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "options: BreakerOptions | undefined | null, envVars: Record<string, string> | undefined | null, onEvent: (name: string, event: BreakerEvent) => void"
    )]
    pub fn new(
        env: Env,
        options: Option<Object>,
        env_vars: Option<std::collections::HashMap<String, String>>,
        on_event: Function<FnArgs<(String, BreakerEvent)>, ()>,
    ) -> Result<Self> {
        let raw = convert::raw_options(options.as_ref())?;
        let config = Config::resolve(&raw, &convert::env_lookup(env_vars))
            .map_err(|e| throw(&env, Code::Config, &e.message))?;
        let io_threads = crate::runtime::start(config.io_threads)
            .map_err(|m| throw(&env, Code::Internal, &m))?;
        let io_warning = (io_threads != config.io_threads).then(|| {
            format!(
                "ioThreads {} ignored: this process's I/O runtime already runs with {io_threads} thread(s), set by the first breaker created",
                config.io_threads
            )
        });
        let deps = Deps {
            runtime: crate::runtime::handle().cloned(),
            ..Deps::default()
        };
        let inner = registry::open(config, deps).map_err(|e| throw(&env, e.code, &e.message))?;
        let observer = Arc::new(JsObserver::new(events::build(&on_event)?));
        let observer_id = inner.subscribe(observer.clone());
        Ok(Self {
            handle: HandleState::new(&inner),
            inner,
            observer: parking_lot::Mutex::new(Some(observer)),
            observer_id,
            io_warning,
        })
    }

    /// The core breaker (for this crate's other files).
    pub(crate) fn core(&self) -> &Arc<Breaker> {
        &self.inner
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// 'closed' | 'open' | 'halfOpen'
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.inner.state().as_str()
    }

    #[napi]
    pub fn stats(&self) -> BreakerStats {
        self.inner.stats().into()
    }

    /// Event names the JS side has listeners for.
    #[napi]
    pub fn set_interest(&self, names: Vec<String>) {
        if let Some(o) = self.observer.lock().as_ref() {
            o.set_interest(&names);
        }
    }

    /// `url` without credentials, query or fragment (what the fallback function receives).
    #[napi]
    pub fn redact_url(&self, url: String) -> String {
        self.inner.redacted_url(&url)
    }

    #[napi]
    pub fn note_function_fallback(&self) {
        self.inner.note_function_fallback();
    }

    /// Worth a warning log at startup: a Redis URL without a secret, an ioThreads value
    /// that came too late to apply, queued writes the signing secret does not verify.
    #[napi]
    pub fn warnings(&self) -> Vec<String> {
        let lkg = &self.inner.config().lkg;
        let mut w: Vec<String> = self.io_warning.iter().cloned().collect();
        if lkg.redis_url.is_some() && lkg.signing_secret.is_none() {
            w.push("last-known-good entries shared through Redis are not authenticated: set DNASTORE_LKG_SECRET or SPIRAL_EVENT_SECRET".to_string());
        }
        if let Some(o) = self.inner.outbox() {
            w.extend(o.warnings().iter().cloned());
        }
        w.extend(self.inner.config().tls.warnings());
        w
    }

    /// Answers synchronously while the circuit is open: `null` (the facade builds the
    /// fallback) or a cached last-known-good outcome; otherwise a Promise.
    #[napi(
        catch_unwind,
        ts_return_type = "null | NativeOutcome | Promise<string | NativeOutcome>"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn fire<'env>(
        &self,
        env: &'env Env,
        url: String,
        method: Option<String>,
        headers: Option<Vec<String>>,
        body: Option<Either<String, Uint8Array>>,
        timeout: Option<f64>,
        deadline: Option<f64>,
        full_response: Option<bool>,
        abort_id: Option<f64>,
        route: Option<String>,
        durable: Option<bool>,
        ordering_key: Option<String>,
        trace: Option<bool>,
    ) -> Result<FireResult<'env>> {
        let args = FireArgs {
            trace: trace.unwrap_or(false),
            durable,
            ordering_key,
            url,
            method,
            headers,
            body,
            timeout,
            deadline,
            full_response,
            abort_id,
            route,
        };
        fire(env, &self.inner, &self.handle, args)
    }

    /// `{ tryReject, fire }` for this handle without napi-rs's per-call method glue (see
    /// `fast`): `fire` takes only a URL.
    #[napi(
        ts_return_type = "{ tryReject: () => boolean, fire: (url: string) => null | NativeOutcome | Promise<string | NativeOutcome> }"
    )]
    pub fn fast_path<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        crate::fast::functions(env, &self.inner, &self.handle)
    }

    /// Stops this handle: its calls still running settle at once with ESHUTDOWN (a durable
    /// write is queued first, with its Idempotency-Key: its outcome is unknown), later fire()
    /// calls reject with ESHUTDOWN, its events stop, and the last handle of a name closes the
    /// breaker (its background work stops, its metric series go).
    #[napi]
    pub fn shutdown(&self) {
        if self.handle.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.handle.stop.cancel();
        // Queues the `shutdown` event, then releases the ThreadsafeFunction (queued
        // events are still delivered) so no handle outlives the breaker.
        self.inner.unsubscribe(self.observer_id);
        self.observer.lock().take();
        registry::close(&self.inner);
    }
}

/// fire()'s arguments, as the facade passes them (already type-checked there).
pub struct FireArgs {
    pub url: String,
    pub method: Option<String>,
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
    pub trace: bool,
}

impl FireArgs {
    pub fn url_only(url: String) -> Self {
        Self {
            url,
            method: None,
            headers: None,
            body: None,
            timeout: None,
            deadline: None,
            full_response: None,
            abort_id: None,
            route: None,
            durable: None,
            ordering_key: None,
            trace: false,
        }
    }
}

/// The open-circuit check before any argument crosses: true when the call was
/// short-circuited and the facade should resolve the `none` fallback; false when it must go
/// through fire() (closed, half-open, or a cache may answer).
pub fn try_reject(b: &Breaker, handle: &HandleState) -> bool {
    !handle.is_closed() && b.try_short_circuit()
}

/// One fire() for both entry points (the `#[napi]` method and the fast path).
///
/// The permit `admit` returns is a guard: if anything below fails or panics before the
/// call future owns it, dropping it gives a half-open trial slot back (issue 11, defect 2).
pub fn fire<'env>(
    env: &'env Env,
    b: &Arc<Breaker>,
    handle: &HandleState,
    a: FireArgs,
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
    let durable = match dnastore_core::http::parse_method(method)
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
            .map(dnastore_core::config::route_template)
            .transpose()?;
        if durable {
            b.make_durable(&mut call, a.ordering_key.clone())?;
        }
        Ok(call)
    };
    let Some(permit) = b.admit() else {
        if durable {
            // Open: stored in the outbox (its sync runs on the I/O runtime, never here).
            let call = prepare(b, &a.url, method, a.headers, a.body).and_then(|r| build(b, r));
            return match call {
                Ok(mut call) => {
                    call.stop = Some(handle.stop.clone());
                    let fut = b.clone().queue_rejected(call);
                    Ok(Either3::C(completion::promise(
                        env,
                        guarded(fut, full),
                        None,
                        false,
                    )?))
                }
                // Invalid: rejected as such (admission already counted the short-circuit).
                Err(e) => Ok(Either3::B(convert::rejection(e))),
            };
        }
        // Open: no runtime, no network. Validating the request is only worth it when
        // the cache may hold an answer for it.
        if b.may_serve_cached() {
            if let Ok(req) = prepare(b, &a.url, method, a.headers, a.body) {
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
                return Ok(Either3::C(completion::promise(
                    env,
                    guarded(fut, full),
                    None,
                    false,
                )?));
            }
        }
        b.rejected(None);
        return Ok(Either3::A(Null));
    };
    let call = prepare(b, &a.url, method, a.headers, a.body).and_then(|r| build(b, r));
    let mut call = match call {
        Ok(c) => c,
        // The unused permit is dropped here, returning its slot.
        Err(e) => return Ok(Either3::B(convert::rejection(e))),
    };
    call.cancel = abort.map(crate::abort::register);
    call.stop = Some(handle.stop.clone());
    let trace = a
        .trace
        .then(|| Arc::new(dnastore_core::CallTrace::default()));
    call.trace = trace.clone();
    // Boxed once here: the call future is large, and moving it by value through the
    // guard, the completion wrapper and the task cell costs a memcpy each time.
    let fut = guarded_traced(Box::pin(b.clone().execute(permit, call)), full, trace);
    // Durable writes stay on the I/O thread with the rest of their outbox's work (its store
    // syncs, fleet claims and delivery loop run there).
    // A call fired with others of this thread pending is never alone in its turn (the
    // hand-over sends it to the I/O thread): only the others ask the breaker's LoneRoute,
    // so its probes count lone calls, and only they read the clock to report back.
    let inline =
        b.config().inline_io && !durable && completion::pending() == 0 && handle.lone.quick();
    // A call that does run on the JS thread reports how long it took.
    let lone = inline.then(|| (handle.lone.clone(), Instant::now()));
    let fut = async move {
        let out = fut.await;
        if let Some((lone, fired)) = lone {
            if crate::local::in_turn() {
                lone.observe(fired.elapsed());
            }
        }
        out
    };
    Ok(Either3::C(completion::promise(env, fut, abort, inline)?))
}

fn prepare(
    b: &Breaker,
    url: &str,
    method: Option<&str>,
    headers: Option<Vec<String>>,
    body: Option<Either<String, Uint8Array>>,
) -> std::result::Result<dnastore_core::http::PreparedRequest, dnastore_core::CallError> {
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

impl Drop for NativeBreaker {
    /// A handle garbage-collected without shutdown() still gives its registry slot back.
    fn drop(&mut self) {
        self.shutdown();
    }
}
