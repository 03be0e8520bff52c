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
const { startHealthCheck } = require('./circuit-health');
const { readOptions } = require('./read-options');

const { Pending, buildError, isOurError, storeInCache } = require('./circuit-call');

const { Admission, CallResult, CallNote } = native;
const EMIT = EventEmitter.prototype.emit;
// What a listener's throw answers when none threw (a listener may throw undefined).
const NO_THROW = Symbol('no listener threw');

const configError = (message) => Object.assign(new TypeError(message), { code: 'ECONFIG' });

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
  #timeoutMs = 0;
  #resetMs = 0;
  #semaphore = null;

  // Whether a per-call event can be heard: a listener of any event (`_eventsCount`), or an
  // emit() replaced after this module loaded (docs/opossum.md, "Differences from opossum").
  // Emitting to nobody, with the latency's clock read, was a quarter of a closed call's
  // overhead and a tenth of an open circuit's (bench/wrapped.js).
  #heard() {
    return this._eventsCount !== 0 || this.emit !== EMIT;
  }

  static isOurError(error) {
    return isOurError(error);
  }

  // opossum's: a status to prime a breaker with (`options.status`).
  static newStatus(options) {
    return new Status(options);
  }

  // Emits an event of a running call. A listener's throw does not escape (fire() never
  // throws, and a timer or a promise reaction has nobody to throw to): it is answered, and
  // the call rejects with it, as opossum's calls do where it survives one.
  #tryEmit(...args) {
    try {
      this.emit(...args);
      return NO_THROW;
    } catch (err) {
      return err;
    }
  }

  // Emits an event no call waits on (a transition, a health check, shutdown): a
  // listener's throw is logged, and what emitted it carries on.
  #emitOrLog(name, ...args) {
    const err = this.#tryEmit(name, ...args);
    if (err !== NO_THROW) this.#logger.error({ breaker: this.#name, event: name, err: String(err && err.message !== undefined ? err.message : err) }, `a CircuitBreaker '${name}' listener threw`);
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
    const mapped = circuitOptions(o);
    const warmUp = mapped.warmUpPossible && (o.allowWarmUp === true || (st !== undefined && st !== null && st.warmUp === true));
    this.#warmUp = warmUp;
    // The metric label: an anonymous action's breaker gets a fixed one (opossum's random
    // name would start a new series at every start of the process).
    const label = String(o.name || action.name || 'anonymous');
    const extras = {
      capacity: o.capacity >= Number.MAX_SAFE_INTEGER ? undefined : Math.max(0, o.capacity),
      warmUp,
      anyFailure: mapped.anyFailure,
      rotatedByCaller: Boolean(o.rotateBucketController),
    };
    try {
      this.#native = new native.NativeCircuit(label, mapped.table, extras);
    } catch (err) {
      if (err && err.code === 'ECONFIG') throw err;
      throw configError(String(err && err.message));
    }
    ({ admit: this.#admit, record: this.#record, note: this.#note } = this.#native.fastPath());
    this.#resetMs = Number(mapped.table.resetTimeout);
    // Validated by the core: from here the numbers are numbers (numeric strings accepted).
    for (const k of ['timeout', 'resetTimeout', 'errorThresholdPercentage', 'rollingCountTimeout', 'rollingCountBuckets', 'volumeThreshold']) {
      if (typeof o[k] === 'string') o[k] = Number(o[k]);
    }
    // `timeout` reads back as given; 0 and false run no timer.
    this.#timeoutMs = o.timeout === false ? 0 : Number(o.timeout) || 0;
    o.coalesceTTL = o.coalesceTTL ?? o.timeout;
    if (o.coalesce) o.coalesceCache = new MemoryCache(o.coalesceSize);
    this.options = o;
    this.#volumeThreshold = o.volumeThreshold;
    this.action = typeof action === 'function' ? action : () => Promise.resolve(action);
    if (this.#timeoutMs > 0) this.#timeouts = new TimeoutQueue(this.#timeoutMs, (call) => this.#timedOut(call));
    // opossum's `status` option: a Status (newStatus()) or stats to start from.
    const status = o.status instanceof Status ? o.status : new Status(o.status ? { stats: o.status } : {});
    this.#status = status.attach(this.#native, () => this.opened, {
      buckets: mapped.buckets,
      bucketMs: mapped.bucketMs,
      rollingPercentilesEnabled: o.rollingPercentilesEnabled,
      enableSnapshots: o.enableSnapshots,
      rotateBucketController: o.rotateBucketController,
    });

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
    if (!this.#enabled && !this.#shut) this.#native.control('disable'); // the core's state (the fetch breaker's disable())
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

  // opossum's stats shape (the status's: the native window's counts).
  get stats() {
    return this.#status.stats;
  }

  // opossum's semaphore, for its `count` of free places (read-only: the native circuit's).
  get semaphore() {
    if (this.#semaphore === null) {
      const capacity = this.options.capacity;
      const circuit = this.#native;
      this.#semaphore = Object.freeze({
        get count() {
          return Math.max(0, capacity - circuit.running);
        },
      });
    }
    return this.#semaphore;
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
    if (this.#heard()) {
      const threw = this.#tryEmit('fire', args);
      if (threw !== NO_THROW) {
        this.#note(CallNote.Fire);
        return Promise.reject(threw);
      }
    }
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
      // The caller's key function or cache throwing rejects the call (opossum: out of fire()).
      let cached;
      try {
        cacheKey = o.cacheGetKey.apply(this, args);
        if (o.cache) cached = o.cacheTransport.get(cacheKey);
      } catch (err) {
        this.#note(CallNote.Fire);
        return Promise.reject(err);
      }
      if (o.cache) {
        if (cached) {
          this.#note(CallNote.CacheHit);
          const threw = this.#tryEmit('cacheHit');
          return threw === NO_THROW ? cached : Promise.reject(threw);
        }
        this.#note(CallNote.CacheMiss);
        const threw = this.#tryEmit('cacheMiss');
        if (threw !== NO_THROW) return Promise.reject(threw);
      }
      if (o.coalesce) {
        const inflight = o.coalesceCache.get(cacheKey);
        if (inflight) {
          this.#note(CallNote.CoalesceHit);
          const threw = this.#tryEmit('coalesceCacheHit');
          return threw === NO_THROW ? inflight : Promise.reject(threw);
        }
        this.#note(CallNote.CoalesceMiss);
        const threw = this.#tryEmit('coalesceCacheMiss');
        if (threw !== NO_THROW) return Promise.reject(threw);
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
      if (this.#heard()) {
        const threw = this.#tryEmit('reject', error);
        if (threw !== NO_THROW) return Promise.reject(threw);
      }
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
      this.#failed(call, err);
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

  // opossum closes a half-open circuit from its own first 'success' listener: 'close'
  // reaches the caller's listeners before 'success' does. A 'success' listener that throws
  // rejects the call with its error, as in opossum (whose success handler runs inside the
  // call's promise chain); awaiting code runs after these events either way.
  #succeeded(call, value, source) {
    if (call.settled) return;
    call.settled = true;
    if (this.#timeouts !== null) this.#timeouts.done();
    let threw = NO_THROW;
    try {
      if (this.#record(call.slot, CallResult.Success)) this.#drain();
      if (this.#heard()) threw = this.#tryEmit('success', value, performance.now() - call.start);
    } catch (err) {
      // An internal error: the call still settles, with it.
      threw = err;
    }
    this.#resetCoalesce(call.cacheKey, 'success');
    if (threw !== NO_THROW) {
      call.reject(threw);
      return;
    }
    call.resolve(value);
    const o = this.options;
    if (o.cache) storeInCache(o, call.cacheKey, source);
  }

  #failed(call, err) {
    if (call.settled) return;
    const latency = performance.now() - call.start;
    const filtered = this.#filtered(err, call.args);
    call.settled = true;
    if (this.#timeouts !== null) this.#timeouts.done();
    const moved = this.#record(call.slot, filtered ? CallResult.Filtered : CallResult.Failure);
    this.#handleError(err, call.args, latency, filtered, moved, call.resolve, call.reject);
    this.#resetCoalesce(call.cacheKey, 'error');
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
    const threw = this.#tryEmit('timeout', error, latency, call.args);
    if (threw === NO_THROW) {
      this.#handleError(error, call.args, latency, filtered, moved, call.resolve, call.reject);
    } else {
      if (moved) this.#drain();
      call.reject(threw);
    }
    this.#resetCoalesce(call.cacheKey, 'timeout');
    if (this.options.abortController) this.options.abortController.abort();
  }

  #filtered(err, args) {
    try {
      return Boolean(this.options.errorFilter(err, ...args));
    } catch {
      return false;
    }
  }

  // opossum's handleError: a filtered error is a success that still rejects; any other is
  // a failure, answered by the fallback if there is one. A listener that throws ends the
  // call with its error (no fallback after a throwing 'failure' listener).
  #handleError(error, args, latency, filtered, moved, resolve, reject) {
    if (filtered) {
      if (moved) this.#drain();
      const threw = this.#tryEmit('success', error, latency);
      reject(threw === NO_THROW ? error : threw);
      return;
    }
    const threw = this.#tryEmit('failure', error, latency, args);
    if (moved) this.#drain();
    if (threw !== NO_THROW) {
      reject(threw);
      return;
    }
    const fb = this.#runFallback(error, args);
    if (fb) resolve(fb);
    else reject(error);
  }

  #semaphoreLocked(args, cacheKey) {
    return new Promise((resolve, reject) => {
      const err = buildError('Semaphore locked', 'ESEMLOCKED');
      const threw = this.#tryEmit('semaphoreLocked', err, 0);
      // Not counted against the circuit natively (docs/opossum.md, differences): events as opossum's.
      if (threw === NO_THROW) this.#handleError(err, args, 0, this.#filtered(err, args), false, resolve, reject);
      else reject(threw);
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

  // Emits (and logs) the transitions the native circuit made, in order. A listener may
  // move the circuit again (open(), close(), shutdown()): its transitions are taken and
  // emitted by the nested call, after this one's.
  #drain() {
    for (const t of this.#native.takeTransitions()) {
      if (t.reason === 'forced') { if (t.to !== 'disabled') this.#state = t.to; continue; } // the core's disable()/enable(): opossum says nothing
      const { name, ...payload } = t;
      logTransition(this.#logger, this.#name, name, payload);
      this.#state = t.to;
      this.#pendingClose = t.to === 'halfOpen';
      if (this.#resetTimer !== null) clearTimeout(this.#resetTimer);
      this.#resetTimer = null;
      if (name === 'open') {
        this.#lastTimerAt = Date.now();
        this.#emitOrLog('open');
        // Unless a listener closed it or shut the breaker down.
        if (this.#state === 'open' && !this.#shut) this.#armReset(this.#resetMs);
      } else if (name === 'halfOpen') {
        this.#renewAbortController();
        this.#emitOrLog('halfOpen', this.options.resetTimeout);
      } else {
        this.#renewAbortController();
        this.#emitOrLog('close');
      }
    }
  }

  // opossum half-opens on a timer (unref'd), never before the 'open' listeners' turn ends:
  // when it fires, the circuit says whether it is time (else how long is left).
  #armReset(ms) {
    if (this.#resetTimer !== null) clearTimeout(this.#resetTimer);
    const timer = setTimeout(() => {
      this.#resetTimer = null;
      if (this.#shut) return;
      const left = this.#native.pollHalfOpen();
      if (left === null) this.#drain();
      else this.#armReset(left);
    }, Math.max(1, Math.ceil(ms)));
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
    if (!this.#shut && this.#native.control('enable')) this.#drain();
    this.#status.startListeneningForRotateEvent();
  }

  disable() {
    this.#enabled = false;
    if (!this.#shut) this.#native.control('disable');
    this.#status.removeRotateBucketControllerListener();
  }

  // Later calls reject with ESHUTDOWN. Calls already running settle as they would have,
  // their timeout included, as in opossum; but no timer of this breaker keeps the process
  // alive any more (a process shutting down must be able to exit).
  shutdown() {
    if (this.#shut) return;
    this.#emitOrLog('shutdown');
    // A 'shutdown' listener may have shut it down already.
    if (this.#shut) return;
    this.#enabled = false; // not the core's disabled state: calls already running still move the circuit
    this.removeAllListeners();
    if (this.#resetTimer !== null) clearTimeout(this.#resetTimer);
    this.#resetTimer = null;
    for (const t of this.#healthTimers) clearInterval(t);
    this.#healthTimers = [];
    this.#status.shutdown();
    this.#shut = true;
    this.#native.shutdown();
    if (this.#timeouts !== null) this.#timeouts.unref();
    this.clearCache();
  }

  clearCache() {
    const o = this.options;
    if (o.cache) o.cacheTransport.flush();
    if (o.coalesceCache) o.coalesceCache.flush();
  }

  healthCheck(func, interval) {
    const timer = startHealthCheck(this, func, interval, () => this.#shut, (e) => {
      this.#emitOrLog('healthCheckFailed', e);
      this.open();
    });
    this.#healthTimers.push(timer);
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
