'use strict';

// The public API: a thin facade over the native binding. Behaviour lives in the Rust
// core; this file adds what Rust cannot express (an EventEmitter, the caller's logger
// and fallback function, and the public result shapes).

const { EventEmitter } = require('node:events');
const native = require('./binding.js');
const { resolveLogger } = require('./lib/logger');
const { registerWith } = require('./lib/prom-client');
const { flattenHeaders, checkBody, checkOptional, checkUrl, invalid } = require('./lib/request');

const FALLBACK_ERROR = 'DNAStore unavailable';
const EXTRA_ENV = ['SPIRAL_EVENT_SECRET'];

// The environment the core reads: DNASTORE_* (and the service's signing secret).
// Passed explicitly because Jest and worker threads give JS its own process.env copy.
function envVars(env) {
  const out = {};
  for (const k of Object.keys(env)) {
    if ((k.startsWith('DNASTORE_') || EXTRA_ENV.includes(k)) && typeof env[k] === 'string') out[k] = env[k];
  }
  return out;
}

function codedError(code, message, extra) {
  const err = new Error(message);
  err.code = code;
  return extra ? Object.assign(err, extra) : err;
}

// napi's own argument errors carry a Status name as code; a panic caught at the
// boundary is GenericFailure. Ours all start with 'E'.
function fromNative(err) {
  if (typeof err.code === 'string' && err.code.startsWith('E')) return err;
  if (err.code === 'GenericFailure') return codedError('EINTERNAL', `internal error in dnastore-breaker: ${err.message}`);
  return invalid(err.message);
}

function parseBody(r) {
  if (r.body === undefined) return null;
  return r.json ? JSON.parse(r.body) : r.body;
}

// Native outcome -> public result. A JSON success arrives as a bare string.
function settle(r, onFallback) {
  if (typeof r === 'string') return JSON.parse(r);
  if (r.kind === 0) {
    const data = parseBody(r);
    return r.headers ? { status: r.status, headers: r.headers, data } : data;
  }
  if (r.kind === 1) return onFallback({ code: r.code, source: r.source, data: parseBody(r), ageMs: r.ageMs });
  const extra = r.status === undefined ? undefined : { status: r.status, body: r.body };
  throw codedError(r.code, r.message, extra);
}

const TRANSITION_LOG = { open: ['warn', 'OPEN'], halfOpen: ['info', 'HALF-OPEN'], close: ['info', 'CLOSED'] };

class Breaker extends EventEmitter {
  #native;
  // The per-request calls, bound to this breaker without napi-rs's method glue (src/fast.rs).
  #tryReject;
  #fireUrl;
  #fallbackFn;
  #logger;

  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw codedError('ECONFIG', `createBreaker options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const { fallback, logger, env, ...core } = options;
    if (fallback !== undefined && typeof fallback !== 'function') {
      throw codedError('ECONFIG', `invalid option \`fallback\`: must be a function, got ${typeof fallback}`);
    }
    this.#fallbackFn = fallback;
    this.#logger = resolveLogger(logger);
    try {
      this.#native = new native.NativeBreaker(core, envVars(env ?? process.env), (name, payload) => this.#onEvent(name, payload));
    } catch (err) {
      throw fromNative(err);
    }
    ({ tryReject: this.#tryReject, fire: this.#fireUrl } = this.#native.fastPath());
    for (const w of this.#native.warnings()) this.#logger.warn({ breaker: this.name }, `dnastore-breaker: ${w}`);
    // Only events somebody listens to cross the native boundary.
    this.on('newListener', (name) => this.#native.setInterest([...this.eventNames(), name]));
    this.on('removeListener', () => this.#native.setInterest(this.eventNames()));
  }

  get name() {
    return this.#native.name;
  }

  /** 'closed' | 'open' | 'halfOpen' */
  get state() {
    return this.#native.state;
  }

  // opossum-compatible aliases.
  get opened() {
    return this.state === 'open';
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

  fire(url, init) {
    let result;
    let cleanup;
    try {
      // Argument types are checked whatever the circuit's state: a caller's bug is reported,
      // never hidden behind a fallback. URL and header syntax are checked by the core when the
      // call goes ahead (an open circuit answers first).
      const href = checkUrl(url);
      if (init === undefined || init === null) {
        // One native call; an open circuit answers null before the URL is even converted.
        result = this.#fireUrl(href);
      } else {
        if (typeof init !== 'object') throw invalid(`init must be an object, got ${typeof init}`);
        const method = checkOptional('method', init.method, 'string');
        const headers = flattenHeaders(init.headers);
        const body = checkBody(init.body);
        const timeout = checkOptional('timeout', init.timeout, 'number');
        const deadline = checkOptional('deadline', init.deadline, 'number');
        const fullResponse = checkOptional('fullResponse', init.fullResponse, 'boolean');
        const route = checkOptional('route', init.route, 'string');
        // Open circuit, nothing cached: answered before anything crosses into native code.
        if (this.#tryReject()) return this.#openFallback(url);
        let handle;
        const { signal } = init;
        if (signal !== undefined && signal !== null) {
          handle = new native.AbortHandle();
          if (signal.aborted) handle.abort();
          else {
            const onAbort = () => handle.abort();
            signal.addEventListener('abort', onAbort, { once: true });
            cleanup = () => signal.removeEventListener('abort', onAbort);
          }
        }
        result = this.#native.fire(href, method, headers, body, timeout, deadline, fullResponse, handle, route);
      }
    } catch (err) {
      if (cleanup) cleanup();
      return Promise.reject(fromNative(err));
    }
    if (result !== null && typeof result.then === 'function') {
      const settled = result.then((r) => this.#settle(r, url));
      return cleanup ? settled.finally(cleanup) : settled;
    }
    // Settled synchronously: the signal has nothing left to abort.
    if (cleanup) cleanup();
    if (result === null) return this.#openFallback(url);
    return this.#settleAsync(result, url);
  }

  shutdown() {
    this.#native.shutdown();
  }

  #settleAsync(r, url) {
    try {
      return Promise.resolve(this.#settle(r, url));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #settle(r, url) {
    return settle(r, (f) => this.#fallback(f.code, f.source, f.data, f.ageMs, url));
  }

  // Open circuit, nothing cached: the fallback without any native Promise or Error object.
  #openFallback(url) {
    return Promise.resolve(this.#fallback('EOPENBREAKER', 'none', null, undefined, url));
  }

  #fallback(code, source, data, ageMs, url) {
    const res = { fallback: true, data, error: FALLBACK_ERROR, code, source };
    if (ageMs !== undefined) res.ageMs = ageMs;
    if (source !== 'none' || this.#fallbackFn === undefined) return res;
    // The caller's fallback function supplies the value when nothing was cached.
    // new Promise: a fallback function that throws synchronously still rejects, never throws from fire().
    return new Promise((resolve) => resolve(this.#fallbackFn({ code, url }))).then((value) => {
      this.#native.noteFunctionFallback();
      return { fallback: true, data: value, error: FALLBACK_ERROR, code, source: 'function' };
    });
  }

  #onEvent(name, payload) {
    const log = TRANSITION_LOG[name];
    if (log) {
      const [level, label] = log;
      this.#logger[level]({ breaker: this.name, ...payload }, `DNAStore circuit breaker ${label} (${payload.reason})`);
    } else if (name === 'redis') {
      // Once per transition (the core dedupes); the URL is never logged: it may hold a password.
      if (payload.up) this.#logger.info({ breaker: this.name, up: true }, 'DNAStore LKG Redis reachable again');
      else this.#logger.warn({ breaker: this.name, up: false, reason: payload.reason }, `DNAStore LKG Redis unreachable (${payload.reason}): serving from the local cache only (errors in dnastore_lkg_redis_errors_total)`);
    }
    this.emit(name, payload);
    if (name === 'failure' && payload.code === 'ETIMEDOUT') this.emit('timeout', payload);
  }
}

/**
 * Creates (or joins, by name) a breaker. Options win over DNASTORE_* environment variables.
 */
function createBreaker(options) {
  return new Breaker(options);
}

// Proves the panic guards (see src/lib.rs): resolves through the same path as fire().
function testPanic(mode) {
  try {
    return native.__testPanic(mode).then((r) => settle(r, (f) => f));
  } catch (err) {
    return Promise.reject(fromNative(err));
  }
}

module.exports = {
  createBreaker,
  __testPanic: testPanic,
  Breaker,
  metrics: native.metrics,
  registerWith,
  optionNames: native.optionNames,
  METRICS_CONTENT_TYPE: native.METRICS_CONTENT_TYPE,
};
