'use strict';

// `CircuitBreaker`: opossum 9's class, for any async function, on the native circuit.
//
// The core's circuit (the same one a createBreaker() breaker uses) owns the rolling
// window, the thresholds, the open/half-open/closed decisions and the counts; it also
// keeps the running calls' permits, in slots, which is the `capacity` bulkhead. This file
// runs what only JS can run: the action, the fallback, the timeout timer, opossum's
// cache and coalescing, health checks and the AbortController, and it emits opossum's
// events in opossum's order. A call crosses into native code twice (admit, record), both
// synchronous calls answering a number: no Promise or Error is built natively.

const { EventEmitter } = require('node:events');
const { randomUUID } = require('node:crypto');
// The global `performance` is a getter on globalThis: read once, not per call.
const { performance } = require('node:perf_hooks');
const native = require('./native');
const { resolveLogger, logTransition } = require('./logger');
const { MemoryCache } = require('./memory-cache');
const { Status } = require('./circuit-status');
const { withDefaults, circuitOptions } = require('./circuit-options');
const { TimeoutQueue } = require('./timeout-queue');
const { readOptions } = require('./read-options');

const { Admission, CallResult, CallNote } = native;
const OUR_ERROR = Symbol('dnastore-breaker circuit error');
const EMIT = EventEmitter.prototype.emit;

// Built where the breaker decides (an open circuit, a timer, a full bulkhead), where a
// stack would show only this file and the event loop; capturing none makes an open
// circuit's rejection about 7x cheaper (bench/wrapped.js). Still a real Error per call.
function buildError(msg, code) {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const error = new Error(msg);
  Error.stackTraceLimit = limit;
  error.code = code;
  error[OUR_ERROR] = true;
  return error;
}

function configError(message) {
  const err = new TypeError(message);
  err.code = 'ECONFIG';
  return err;
}

// One running call.
class Pending {
  constructor(args, slot, cacheKey, start) {
    this.args = args;
    this.slot = slot;
    this.cacheKey = cacheKey;
    this.start = start;
    this.deadline = 0;
    this.settled = false;
    this.resolve = undefined;
    this.reject = undefined;
  }
}

// Runs `fn`, which settles a call and emits its events; a listener's throw surfaces like
// an emitter's from a callback (uncaught) instead of out of fire(), which never throws.
function rethrowLater(fn) {
  try {
    fn();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

class CircuitBreaker extends EventEmitter {
  #native;
  // admit() and record(slot, result), bound to the native circuit without napi-rs's method glue.
  #admit;
  #record;
  #note;
  #logger;
  #timeouts = null;
  #fallback = null;
  #enabled;
  #state = 'closed';
  #pendingClose = false;
  #shut = false;
  #resetTimer = null;
  #lastTimerAt;
  #healthTimers = [];
  #name;
  #group;
  #volumeThreshold;
  #warmUp;
  #status;

  // Whether a per-call event can be heard: a listener of any event, or an emit() replaced
  // on the instance, a subclass or EventEmitter.prototype after this module loaded (a monitor
  // that wraps it sees every event, as in opossum; one installed on the prototype before this
  // module loaded is taken for Node's own: README, "Differences from opossum").
  // Nobody listening, emit() is a no-op, but its call and arguments (the success latency's
  // clock read) were about a quarter of a closed call's overhead and a tenth of an open
  // circuit's (bench/wrapped.js). `_eventsCount` is EventEmitter's own count of event names.
  #heard() {
    return this._eventsCount !== 0 || this.emit !== EMIT;
  }

  static isOurError(error) {
    return error !== null && typeof error === 'object' && error[OUR_ERROR] === true;
  }

  constructor(action, options = {}) {
    super();
    if (!action) {
      throw new TypeError('No action provided. Cannot construct a CircuitBreaker without an invocable action.');
    }
    if (options === null || typeof options !== 'object') throw configError(`CircuitBreaker options must be an object, got ${options === null ? 'null' : typeof options}`);
    const o = withDefaults(readOptions(options, configError));
    const { logger } = o;
    delete o.logger;
    this.#logger = resolveLogger(logger);
    this.#name = o.name || action.name || randomUUID();
    this.#group = o.group || this.#name;
    const st = o.state;
    const warmUp = o.allowWarmUp === true || (st !== undefined && st !== null && st.warmUp === true);
    this.#warmUp = warmUp;
    try {
      this.#native = new native.NativeCircuit(String(this.#name), circuitOptions(o), o.capacity >= Number.MAX_SAFE_INTEGER ? null : Math.max(0, o.capacity), warmUp);
    } catch (err) {
      if (err && err.code === 'ECONFIG') throw err;
      throw configError(String(err && err.message));
    }
    ({ admit: this.#admit, record: this.#record, note: this.#note } = this.#native.fastPath());
    // Validated by the core: from here the numbers are numbers (numeric strings accepted).
    for (const k of ['timeout', 'resetTimeout', 'errorThresholdPercentage', 'rollingCountTimeout', 'rollingCountBuckets', 'volumeThreshold']) {
      if (typeof o[k] === 'string') o[k] = Number(o[k]);
    }
    if (o.timeout === false || o.timeout === 0) o.timeout = false;
    o.coalesceTTL = o.coalesceTTL ?? o.timeout;
    if (o.coalesce) o.coalesceCache = new MemoryCache(o.coalesceSize);
    this.options = o;
    this.#volumeThreshold = o.volumeThreshold;
    this.action = typeof action === 'function' ? action : () => Promise.resolve(action);
    if (o.timeout) this.#timeouts = new TimeoutQueue(o.timeout, (call) => this.#timedOut(call));
    this.#status = new Status(this, Math.floor(o.rollingCountTimeout / o.rollingCountBuckets), o.enableSnapshots);

    if (st !== undefined && st !== null && typeof st === 'object') {
      this.#enabled = st.enabled !== false;
      if (st.shutdown) {
        this.shutdown();
      } else if (st.closed === false && !st.halfOpen) {
        // Open; past its reset timeout already when it was saved: half-open.
        if (st.lastTimerAt !== undefined && Date.now() - st.lastTimerAt > o.resetTimeout) this.#force('halfOpen');
        else this.open();
      } else if (st.halfOpen) {
        this.#force('halfOpen');
      }
    } else {
      this.#enabled = o.enabled !== false;
    }
  }

  get name() {
    return this.#name;
  }

  get group() {
    return this.#group;
  }

  get closed() {
    return this.#state === 'closed';
  }

  get opened() {
    return this.#state === 'open';
  }

  get halfOpen() {
    return this.#state === 'halfOpen';
  }

  get pendingClose() {
    return this.#pendingClose;
  }

  get isShutdown() {
    return this.#shut;
  }

  get enabled() {
    return this.#enabled;
  }

  get warmUp() {
    return this.#warmUp && !this.#shut && this.#native.warmingUp;
  }

  get volumeThreshold() {
    return this.#volumeThreshold;
  }

  get status() {
    return this.#status;
  }

  // opossum's stats shape, from the native window's counts.
  get stats() {
    const s = this.#native.stats();
    const percentiles = {};
    for (const [p, v] of s.percentiles) percentiles[p] = v;
    return {
      failures: s.failures,
      fallbacks: s.fallbacks,
      // Errors the errorFilter accepted count as successes, as in opossum.
      successes: s.successes + s.filtered,
      rejects: s.rejects,
      fires: s.fires,
      timeouts: s.timeouts,
      cacheHits: s.cacheHits,
      cacheMisses: s.cacheMisses,
      coalesceCacheHits: s.coalesceCacheHits,
      coalesceCacheMisses: s.coalesceCacheMisses,
      semaphoreRejections: s.semaphoreRejections,
      percentiles,
      latencyTimes: [],
      latencyMean: s.latencyMean,
    };
  }

  toJSON() {
    return {
      state: {
        name: this.name,
        enabled: this.enabled,
        closed: this.closed,
        open: this.opened,
        halfOpen: this.halfOpen,
        warmUp: this.warmUp,
        shutdown: this.isShutdown,
        lastTimerAt: this.#lastTimerAt,
      },
      status: this.stats,
    };
  }

  fallback(func) {
    let fb = func;
    if (func instanceof CircuitBreaker) fb = (...args) => func.fire(...args);
    this.#fallback = fb;
    this.#native.setFallbackOnRefusal(Boolean(fb));
    return this;
  }

  fire(...args) {
    return this.#call(this.action, args);
  }

  call(context, ...args) {
    return this.#call(context, args);
  }

  #call(context, args) {
    if (this.#shut) return Promise.reject(buildError('The circuit has been shutdown.', 'ESHUTDOWN'));
    if (this.#heard()) this.emit('fire', args);
    if (!this.#enabled) {
      this.#note(CallNote.Fire);
      try {
        return Promise.resolve(this.action.apply(context, args));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const o = this.options;
    let cacheKey = '';
    if (o.cache || o.coalesce) {
      cacheKey = o.cacheGetKey.apply(this, args);
      if (o.cache) {
        const cached = o.cacheTransport.get(cacheKey);
        if (cached) {
          this.#note(CallNote.CacheHit);
          this.emit('cacheHit');
          return cached;
        }
        this.#note(CallNote.CacheMiss);
        this.emit('cacheMiss');
      }
      if (o.coalesce) {
        const inflight = o.coalesceCache.get(cacheKey);
        if (inflight) {
          this.#note(CallNote.CoalesceHit);
          this.emit('coalesceCacheHit');
          return inflight;
        }
        this.#note(CallNote.CoalesceMiss);
        this.emit('coalesceCacheMiss');
      }
    }
    const slot = this.#admit();
    // Open with its reset timeout just elapsed: the admission half-opened it.
    if (this.#state === 'open' && slot >= 0) this.#drain();
    if (this.#state === 'halfOpen' && slot >= 0) this.#pendingClose = false;
    let promise;
    if (slot >= 0) {
      promise = this.#run(context, args, slot, cacheKey);
    } else if (slot === Admission.Open) {
      const error = buildError('Breaker is open', 'EOPENBREAKER');
      if (this.#heard()) this.emit('reject', error);
      // Its fallback was counted at admission.
      return this.#runFallback(error, args, true) || Promise.reject(error);
    } else if (slot === Admission.Capacity) {
      promise = this.#semaphoreLocked(args, cacheKey);
    } else {
      return Promise.reject(buildError('The circuit has been shutdown.', 'ESHUTDOWN'));
    }
    if (o.coalesce) o.coalesceCache.set(cacheKey, promise, o.coalesceTTL > 0 ? Date.now() + o.coalesceTTL : 0);
    return promise;
  }

  #run(context, args, slot, cacheKey) {
    const call = new Pending(args, slot, cacheKey, performance.now());
    const promise = new Promise((resolve, reject) => {
      call.resolve = resolve;
      call.reject = reject;
    });
    if (this.#timeouts !== null) this.#timeouts.add(call, call.start);
    let result;
    try {
      result = this.action.apply(context, args);
    } catch (err) {
      rethrowLater(() => this.#failed(call, err));
      return promise;
    }
    if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof result.then === 'function') {
      result.then((value) => this.#succeeded(call, value, result), (err) => this.#failed(call, err));
    } else {
      // A plain value settles on a microtask, as opossum's Promise.resolve(result).then:
      // a listener attached right after fire() still sees 'success'.
      const settled = Promise.resolve(result);
      settled.then((value) => this.#succeeded(call, value, settled));
    }
    return promise;
  }

  #succeeded(call, value, source) {
    if (call.settled) return;
    call.settled = true;
    if (this.#timeouts !== null) this.#timeouts.done();
    // opossum closes a half-open circuit from its own first 'success' listener: 'close'
    // reaches the caller's listeners before 'success' does.
    // The call settles even if a listener throws (the throw then surfaces as it would
    // from any emitter); awaiting code runs after these events either way.
    // A listener that throws rejects the call with its error, as in opossum (whose success
    // handler runs inside the call's promise chain); the process lives on.
    let thrown;
    let threw = false;
    try {
      if (this.#record(call.slot, CallResult.Success)) this.#drain();
      if (this.#heard()) this.emit('success', value, performance.now() - call.start);
    } catch (err) {
      threw = true;
      thrown = err;
    } finally {
      this.#resetCoalesce(call.cacheKey, 'success');
      if (threw) call.reject(thrown);
      else call.resolve(value);
      const o = this.options;
      if (o.cache && !threw) o.cacheTransport.set(call.cacheKey, source, o.cacheTTL > 0 ? Date.now() + o.cacheTTL : 0);
    }
  }

  #failed(call, err) {
    if (call.settled) return;
    const latency = performance.now() - call.start;
    const filtered = this.#filtered(err, call.args);
    call.settled = true;
    if (this.#timeouts !== null) this.#timeouts.done();
    const moved = this.#record(call.slot, filtered ? CallResult.Filtered : CallResult.Failure);
    try {
      this.#handleError(err, call.args, latency, filtered, moved, call.resolve, call.reject);
    } finally {
      this.#resetCoalesce(call.cacheKey, 'error');
    }
  }

  #timedOut(call) {
    if (call.settled) return;
    const latency = performance.now() - call.start;
    const error = buildError(`Timed out after ${this.options.timeout}ms`, 'ETIMEDOUT');
    call.settled = true;
    // opossum runs a timeout through its error handling too (errorFilter, failure, fallback):
    // a timeout the errorFilter accepts is not a failure of the circuit either.
    const filtered = this.#filtered(error, call.args);
    const moved = this.#record(call.slot, filtered ? CallResult.FilteredTimeout : CallResult.Timeout);
    try {
      this.emit('timeout', error, latency, call.args);
    } finally {
      try {
        this.#handleError(error, call.args, latency, filtered, moved, call.resolve, call.reject);
      } finally {
        this.#resetCoalesce(call.cacheKey, 'timeout');
        if (this.options.abortController) this.options.abortController.abort();
      }
    }
  }

  #filtered(err, args) {
    try {
      return Boolean(this.options.errorFilter(err, ...args));
    } catch {
      return false;
    }
  }

  // opossum's handleError: a filtered error is a success that still rejects; any other is
  // a failure, answered by the fallback if there is one.
  // The call settles whatever a listener does (`finally`).
  #handleError(error, args, latency, filtered, moved, resolve, reject) {
    let fb;
    try {
      if (filtered) {
        if (moved) this.#drain();
        this.emit('success', error, latency);
        return;
      }
      this.emit('failure', error, latency, args);
      if (moved) this.#drain();
      fb = this.#runFallback(error, args);
    } finally {
      if (fb) resolve(fb);
      else reject(error);
    }
  }

  #semaphoreLocked(args, cacheKey) {
    return new Promise((resolve, reject) => {
      const err = buildError('Semaphore locked', 'ESEMLOCKED');
      this.emit('semaphoreLocked', err, 0);
      // Not counted against the circuit natively (see the README): events as opossum's.
      this.#handleError(err, args, 0, this.#filtered(err, args), false, resolve, reject);
      this.#resetCoalesce(cacheKey);
    });
  }

  #runFallback(err, args, counted = false) {
    const fb = this.#fallback;
    if (!fb) return undefined;
    try {
      // The error goes last, after the call's own arguments (spread only when there are some).
      // `apply`, as opossum: a fallback's own `call` property or a Proxy's traps see the same.
      const result = fb.apply(fb, args.length === 0 ? [err] : [...args, err]);
      if (!counted) this.#note(CallNote.Fallback);
      if (this.#heard()) this.emit('fallback', result, err);
      if (result instanceof Promise) return result;
      return Promise.resolve(result);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #resetCoalesce(cacheKey, event) {
    const o = this.options;
    if (o.coalesceCache && (!event || o.coalesceResetOn.includes(event))) o.coalesceCache.delete(cacheKey);
  }

  // Emits (and logs) the transitions the native circuit made, in order.
  #drain() {
    for (const t of this.#native.takeTransitions()) {
      const { name, ...payload } = t;
      logTransition(this.#logger, this.#name, name, payload);
      this.#state = t.to;
      this.#pendingClose = t.to === 'halfOpen';
      if (this.#resetTimer !== null) clearTimeout(this.#resetTimer);
      this.#resetTimer = null;
      if (name === 'open') {
        this.#lastTimerAt = Date.now();
        this.emit('open');
        this.#armReset();
      } else if (name === 'halfOpen') {
        this.#renewAbortController();
        this.emit('halfOpen', this.options.resetTimeout);
      } else {
        this.#renewAbortController();
        this.emit('close');
      }
    }
  }

  // opossum half-opens on a timer (unref'd): the circuit says how long is left.
  #armReset() {
    const left = this.#native.pollHalfOpen();
    if (left === null) {
      this.#drain();
      return;
    }
    const timer = setTimeout(() => {
      this.#resetTimer = null;
      if (!this.#shut) this.#armReset();
    }, Math.max(1, Math.ceil(left)));
    timer.unref();
    this.#resetTimer = timer;
  }

  #renewAbortController() {
    const o = this.options;
    if (o.autoRenewAbortController && o.abortController && o.abortController.signal.aborted) {
      o.abortController = new AbortController();
    }
  }

  #force(to) {
    if (this.#shut) return;
    if (this.#native.force(to)) this.#drain();
  }

  open() {
    this.#force('open');
  }

  close() {
    this.#force('closed');
  }

  enable() {
    this.#enabled = true;
  }

  disable() {
    this.#enabled = false;
  }

  shutdown() {
    this.emit('shutdown');
    this.disable();
    this.removeAllListeners();
    if (this.#resetTimer !== null) clearTimeout(this.#resetTimer);
    this.#resetTimer = null;
    for (const t of this.#healthTimers) clearInterval(t);
    this.#healthTimers = [];
    this.#status.shutdown();
    this.#shut = true;
    this.#native.shutdown();
    // No timer outlives shutdown: calls still waiting for theirs settle now.
    if (this.#timeouts !== null) {
      for (const call of this.#timeouts.close()) {
        call.settled = true;
        call.reject(buildError('The circuit has been shutdown.', 'ESHUTDOWN'));
      }
    }
    this.clearCache();
  }

  clearCache() {
    const o = this.options;
    if (o.cache) o.cacheTransport.flush();
    if (o.coalesceCache) o.coalesceCache.flush();
  }

  healthCheck(func, interval) {
    interval = interval || 5000;
    if (typeof func !== 'function') throw new TypeError('Health check function must be a function');
    if (isNaN(interval)) throw new TypeError('Health check interval must be a number');
    const check = () => {
      if (this.#shut) return;
      let p;
      try {
        p = func.apply(this);
      } catch (e) {
        p = Promise.reject(e);
      }
      Promise.resolve(p).catch((e) => {
        if (this.#shut) return;
        this.emit('healthCheckFailed', e);
        this.open();
      });
    };
    const timer = setInterval(check, interval);
    timer.unref();
    this.#healthTimers.push(timer);
    check();
  }

  getSignal() {
    const c = this.options.abortController;
    return c && c.signal ? c.signal : undefined;
  }

  getAbortController() {
    return this.options.abortController;
  }
}

module.exports = { CircuitBreaker };
