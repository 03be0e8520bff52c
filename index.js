'use strict';

// The public API: a thin facade over the native binding. Behaviour lives in the Rust
// core; this file adds what Rust cannot express (an EventEmitter, the caller's logger
// and fallback function, and the public result shapes).

const { EventEmitter } = require('node:events');
const native = require('./lib/native');
const { resolveLogger, logTransition, logRouteTransition, logFleet } = require('./lib/logger');
const { registerWith } = require('./lib/prom-client');
const { Outbox } = require('./lib/outbox');
const { CircuitBreaker } = require('./lib/circuit-breaker');
const { flattenHeaders, checkBody, checkOptional, checkUrl, invalid } = require('./lib/request');
const { FALLBACK_ERROR, codedError, fromNative, fromCaller, settle } = require('./lib/outcome');
const { readOptions, threw } = require('./lib/read-options');
const { pickEnv } = require('./lib/env-vars');
const tracing = require('./lib/tracing');

// Calls with an AbortSignal are numbered; the binding keeps their tokens under that number.
let abortSeq = 0;

// The environment the core reads (lib/env-vars.js). An `env` option is the caller's
// object: what its getters or traps throw is ECONFIG.
function envVars(env) {
  try {
    return pickEnv(env);
  } catch (err) {
    throw threw(configError, 'invalid option `env`: reading it threw', err);
  }
}

const configError = (message) => codedError('ECONFIG', message);


class Breaker extends EventEmitter {
  #native;
  // The per-request call, fire(url, init), bound to this breaker without napi-rs's method
  // glue (src/fast.rs): one crossing per call.
  #fireNative;
  #fallbackFn;
  #logger;
  #outbox;
  // The core's URL redaction, for span attributes.
  #redact = (href) => this.#native.redactUrl(href);

  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw codedError('ECONFIG', `createBreaker options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const { fallback, logger, env, ...core } = readOptions(options, configError);
    if (fallback !== undefined && typeof fallback !== 'function') {
      throw codedError('ECONFIG', `invalid option \`fallback\`: must be a function, got ${typeof fallback}`);
    }
    this.#fallbackFn = fallback;
    this.#logger = resolveLogger(logger);
    const vars = envVars(env ?? process.env);
    try {
      this.#native = new native.NativeBreaker(core, vars, Breaker.#forwarder(new WeakRef(this)));
    } catch (err) {
      throw fromNative(err);
    }
    ({ fire: this.#fireNative } = this.#native.fastPath());
    this.#outbox = this.#native.hasOutbox ? new Outbox(this.#native) : null;
    for (const w of this.#native.warnings()) this.#logger.warn({ breaker: this.name }, `dnastore-breaker: ${w}`);
    // Only events somebody listens to cross the native boundary.
    this.on('newListener', (name) => this.#native.setInterest([...this.eventNames(), name]));
    this.on('removeListener', () => this.#native.setInterest(this.eventNames()));
  }

  // The native side holds the event callback strongly (a threadsafe function is a GC root):
  // it must not hold the facade strongly too, or a breaker dropped without shutdown() could
  // never be collected, nor its native handle release its metric series. Built in a static
  // method so the closure's scope holds only the WeakRef (closures made in the constructor
  // share its context, `this` included).
  static #forwarder(ref) {
    return (name, payload) => ref.deref()?.#onEvent(name, payload);
  }

  get name() {
    return this.#native.name;
  }

  /** The durable outbox's operations (stats, list, deadLetters, retry, discard, drain); null without one. */
  get outbox() {
    return this.#outbox;
  }

  /** 'closed' | 'open' | 'halfOpen', or an operator's 'forcedOpen' | 'disabled' */
  get state() {
    return this.#native.state;
  }

  // opossum-compatible aliases.
  get opened() {
    const s = this.state;
    return s === 'open' || s === 'forcedOpen';
  }

  get closed() {
    return this.state === 'closed';
  }

  get halfOpen() {
    return this.state === 'halfOpen';
  }

  stats() {
    return this.#native.stats();
  }

  // Manual control (docs/operations.md): each answers whether the state changed.
  /** Forced open until close() or enable(): no trials, fallbacks served, durable writes queued. */
  open() {
    return this.#native.control('open');
  }

  /** Closed now, the window cleared; automatic operation again. */
  close() {
    return this.#native.control('close');
  }

  // The state of a route's own circuit (circuitPerRoute); null when it has none.
  stateOf(route) {
    return this.#native.stateOf(route);
  }

  /** Every call goes to DNAStore and nothing trips; outcomes still counted. */
  disable() {
    return this.#native.control('disable');
  }

  /** Back to automatic operation, in the state the circuit had. */
  enable() {
    return this.#native.control('enable');
  }

  /**
   * Never throws: whatever goes wrong, the returned Promise settles (resolves with the
   * response or a fallback, or rejects with a coded error).
   */
  fire(url, init) {
    let args;
    try {
      args = this.#read(url, init);
    } catch (err) {
      return Promise.reject(fromCaller(err));
    }
    // An OpenTelemetry span (lib/tracing.js); null unless a tracer provider is registered.
    const span = tracing.installed ? tracing.startSpan(this, args, this.#redact) : null;
    if (span !== null) return tracing.endWith(span, this.#fire(args, span), () => this.state);
    return this.#fire(args, null);
  }

  #fire(args, span) {
    let result;
    try {
      result = this.#call(args);
    } catch (err) {
      args.cleanup();
      return Promise.reject(fromNative(err));
    }
    const { href, route } = args;
    if (result !== null && typeof result.then === 'function') {
      const settled = span === null ? result.then((r) => this.#settle(r, href, route)) : result.then((r) => {
        tracing.recordNative(span, r);
        return this.#settle(r, href, route);
      });
      return args.signal === undefined ? settled : settled.finally(args.cleanup);
    }
    // Settled synchronously: the signal has nothing left to abort.
    args.cleanup();
    if (result === null) {
      if (span !== null) tracing.recordShortCircuit(span);
      return this.#openFallback(href, route);
    }
    if (span !== null) tracing.recordNative(span, result);
    return this.#settleAsync(result, href, route);
  }

  // Reads and type-checks the caller's arguments (the caller's getters and iterators run
  // here). URL and header syntax are checked by the core when the call goes ahead.
  #read(url, init) {
    const href = checkUrl(url);
    if (init === undefined || init === null) return { href, init: undefined, cleanup: noop, headers: undefined, trace: false };
    if (typeof init !== 'object') throw invalid(`init must be an object, got ${typeof init}`);
    const a = {
      href,
      init,
      method: checkOptional('method', init.method, 'string'),
      headers: flattenHeaders(init.headers),
      body: checkBody(init.body),
      timeout: checkOptional('timeout', init.timeout, 'number'),
      deadline: checkOptional('deadline', init.deadline, 'number'),
      fullResponse: checkOptional('fullResponse', init.fullResponse, 'boolean'),
      route: checkOptional('route', init.route, 'string'),
      durable: checkOptional('durable', init.durable, 'boolean'),
      orderingKey: checkOptional('orderingKey', init.orderingKey, 'string'),
      signal: init.signal ?? undefined,
      trace: false,
      abortId: undefined,
      aborted: false,
      cleanup: noop,
    };
    if (a.signal !== undefined) {
      const { signal } = a;
      if (typeof signal !== 'object' || typeof signal.addEventListener !== 'function' || typeof signal.removeEventListener !== 'function') {
        throw invalid('init.signal must be an AbortSignal');
      }
      abortSeq += 1;
      const id = abortSeq;
      a.abortId = id;
      // Read once, here: a getter that throws is the caller's EINVALID before anything is
      // sent (read again after the native call, it threw once the write had gone out).
      a.aborted = Boolean(signal.aborted);
      if (!a.aborted) {
        const onAbort = () => native.abortCall(id);
        signal.addEventListener('abort', onAbort, { once: true });
        a.cleanup = () => {
          try {
            signal.removeEventListener('abort', onAbort);
          } catch {
            // The caller's signal object threw; the listener is all we had to remove.
          }
        };
      }
    }
    return a;
  }

  // The native call. `null`: short-circuited (open, nothing cached). One crossing: an open
  // circuit answers null before the URL or any field is converted, unless the call may be a
  // durable write (the native side queues it). init's fields go as arguments: passed as one
  // object read by name, a call was 3 % dearer closed and 40 % dearer open (src/fast.rs).
  #call(a) {
    const r = a.init === undefined && !a.trace
      ? this.#fireNative(a.href)
      : this.#fireNative(a.href, a.method, a.headers, a.body, a.timeout, a.deadline, a.fullResponse, a.abortId, a.route, a.durable, a.orderingKey, a.trace);
    // An already aborted signal: the call is registered now, abort it (it settles EABORTED).
    if (a.aborted === true) native.abortCall(a.abortId);
    return r;
  }

  shutdown() {
    this.#native.shutdown();
  }

  #settleAsync(r, href, route) {
    try {
      return Promise.resolve(this.#settle(r, href, route));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #settle(r, href, route) {
    return settle(r, (f) => this.#fallback(f.code, f.source, f.data, f.ageMs, href, route));
  }

  // Open circuit, nothing cached: the fallback without any native Promise or Error object.
  #openFallback(href, route) {
    try {
      return Promise.resolve(this.#fallback('EOPENBREAKER', 'none', null, undefined, href, route));
    } catch (err) {
      return Promise.reject(fromNative(err));
    }
  }

  #fallback(code, source, data, ageMs, href, route) {
    const res = { fallback: true, data, error: FALLBACK_ERROR, code, source };
    if (ageMs !== undefined) res.ageMs = ageMs;
    if (source !== 'none' || this.#fallbackFn === undefined) return res;
    // The caller's fallback function supplies the value when nothing was cached. It gets
    // the URL as logs may show it (no credentials, no query: the core redacts it) and the
    // route template, never the raw URL.
    const info = { code, url: this.#native.redactUrl(href) };
    if (route !== undefined) info.route = route;
    // new Promise: a fallback function that throws synchronously still rejects, never throws from fire().
    return new Promise((resolve) => resolve(this.#fallbackFn(info))).then((value) => {
      this.#native.noteFunctionFallback();
      return { fallback: true, data: value, error: FALLBACK_ERROR, code, source: 'function' };
    });
  }

  #onEvent(name, payload) {
    if (logTransition(this.#logger, this.name, name, payload)) {
      // Logged; emitted below like every event.
    } else if (name === 'outbox') {
      const fields = { breaker: this.name, phase: payload.phase, queued: payload.queued, delivered: payload.delivered, deadLettered: payload.deadLettered, afterMs: payload.afterMs };
      if (payload.phase === 'started') this.#logger.info(fields, `DNAStore outbox delivery started: ${payload.queued} queued writes`);
      else if (payload.phase === 'paused') this.#logger.warn(fields, `DNAStore outbox delivery paused (circuit open): ${payload.queued} still queued, ${payload.delivered} delivered so far`);
      else this.#logger.info(fields, `DNAStore outbox drained: ${payload.delivered} delivered, ${payload.deadLettered} dead-lettered in ${Math.round(payload.afterMs)} ms`);
    } else if (name === 'redis') {
      // Once per transition (the core dedupes); the URL is never logged: it may hold a password.
      if (payload.up) this.#logger.info({ breaker: this.name, up: true }, 'DNAStore LKG Redis reachable again');
      else this.#logger.warn({ breaker: this.name, up: false, reason: payload.reason }, `DNAStore LKG Redis unreachable (${payload.reason}): serving from the local cache only (errors in dnastore_lkg_redis_errors_total)`);
    } else if (name === 'fleet') {
      logFleet(this.#logger, this.name, payload);
    } else if (name === 'routeTransition') {
      logRouteTransition(this.#logger, this.name, payload);
    } else if (name === 'tls') {
      // The reason names the file and the problem, never its content.
      if (payload.up) this.#logger.info({ breaker: this.name }, 'DNAStore TLS material reloaded: new connections use the rotated certificate');
      else this.#logger.error({ breaker: this.name, reason: payload.reason }, `DNAStore TLS reload failed (${payload.reason}): the previous certificate stays in use (dnastore_tls_reloads_total{result="error"})`);
    }
    this.emit(name, payload);
    if (name === 'failure' && payload.code === 'ETIMEDOUT') this.emit('timeout', payload);
  }
}

function noop() {}

/**
 * Creates (or joins, by name) a breaker. Options win over DNASTORE_* environment variables.
 */
function createBreaker(options) {
  return new Breaker(options);
}

module.exports = {
  createBreaker,
  Breaker,
  CircuitBreaker,
  metrics: native.metrics,
  registerWith,
  optionNames: native.optionNames,
  METRICS_CONTENT_TYPE: native.METRICS_CONTENT_TYPE,
};
