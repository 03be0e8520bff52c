//! `NativeBreaker`: one JS handle on a core breaker from the process-wide registry.

use std::sync::Arc;

use dnastore_core::{registry, Breaker, Code, Config, Deps};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::bridge;
use crate::convert::{self, BreakerStats};
use crate::events::{self, BreakerEvent, JsObserver};
use crate::fire::HandleState;
use crate::throw::throw;

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
        let io_threads =
            bridge::start_io(config.io_threads).map_err(|m| throw(&env, Code::Internal, &m))?;
        let io_warning = (io_threads != config.io_threads).then(|| {
            format!(
                "ioThreads {} ignored: this process's I/O runtime already runs with {io_threads} thread(s), set by the first breaker created",
                config.io_threads
            )
        });
        let deps = Deps {
            runtime: bridge::io_handle().cloned(),
            ..Deps::default()
        };
        let observer = Arc::new(JsObserver::new(events::build(&on_event)?));
        // Subscribed before a new breaker starts its background work: its first events
        // (the fleet circuit connecting, or failing to) reach the facade's log.
        let (inner, observer_id) = registry::open_with(config, deps, Some(observer.clone()))
            .map_err(|e| throw(&env, e.code, &e.message))?;
        let observer_id = observer_id.unwrap_or_default();
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

    /// 'closed' | 'open' | 'halfOpen' | 'forcedOpen' | 'disabled'
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.inner.state().as_str()
    }

    #[napi]
    pub fn stats(&self) -> BreakerStats {
        let mut s: BreakerStats = self.inner.stats().into();
        s.fleet = self.inner.fleet_stats().map(Into::into);
        s
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
        if self.inner.config().fleet.is_some() && lkg.signing_secret.is_none() {
            w.push("the fleet circuit's messages through Redis are not authenticated (anyone who can write to that Redis can open or close the fleet's circuit): set DNASTORE_LKG_SECRET or SPIRAL_EVENT_SECRET".to_string());
        }
        if let Some(o) = self.inner.outbox() {
            w.extend(o.warnings().iter().cloned());
        }
        w.extend(dnastore_core::tls::warnings(&self.inner.config().tls));
        w
    }

    /// `{ fire }` for this handle, bound to it without napi-rs's per-call method glue (see
    /// `fast`). `fire` answers synchronously while the circuit is open: `null` (the facade
    /// builds the fallback) or a cached last-known-good outcome; otherwise a Promise. Its
    /// arguments after the URL are `init`'s fields as the facade checked them (see `fast`).
    #[napi(
        ts_return_type = "{ fire: (url: string, method?: string, headers?: string[], body?: string | Uint8Array, timeout?: number, deadline?: number, fullResponse?: boolean, abortId?: number, route?: string, durable?: boolean, orderingKey?: string, trace?: boolean) => null | NativeOutcome | Promise<string | NativeOutcome> }"
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
        if !self.handle.close() {
            return;
        }
        // Queues the `shutdown` event, then releases the ThreadsafeFunction (queued
        // events are still delivered) so no handle outlives the breaker.
        self.inner.unsubscribe(self.observer_id);
        self.observer.lock().take();
        registry::close(&self.inner);
    }
}

impl Drop for NativeBreaker {
    /// A handle garbage-collected without shutdown() still gives its registry slot back.
    fn drop(&mut self) {
        self.shutdown();
    }
}
