'use strict';

const { EventEmitter } = require('node:events');
const { performance } = require('node:perf_hooks');

const PERCENTILES = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 1];
const COUNTS = ['failures', 'fallbacks', 'successes', 'rejects', 'fires', 'timeouts', 'cacheHits', 'cacheMisses', 'coalesceCacheHits', 'coalesceCacheMisses', 'semaphoreRejections'];

// opossum's empty bucket.
function bucket() {
  const b = {};
  for (const k of COUNTS) b[k] = 0;
  b.percentiles = {};
  b.latencyTimes = [];
  return b;
}

// A bucket from the native window's counts (errors the errorFilter accepted count as
// successes, as in opossum).
function fromNative(n) {
  return {
    failures: n.failures,
    fallbacks: n.fallbacks,
    successes: n.successes + n.filtered,
    rejects: n.rejects,
    fires: n.fires,
    timeouts: n.timeouts,
    cacheHits: n.cacheHits,
    cacheMisses: n.cacheMisses,
    coalesceCacheHits: n.coalesceCacheHits,
    coalesceCacheMisses: n.coalesceCacheMisses,
    semaphoreRejections: n.semaphoreRejections,
    percentiles: {},
    latencyTimes: [],
  };
}

// opossum's `status`: the rolling window's stats, its buckets (`window`, the current one
// first) and a `snapshot` event per bucket interval. The counts live in the native window
// (the circuit decides on them); a status made by `CircuitBreaker.newStatus()`, or given as
// `options.status`, carries stats to start from: they are reported with the window's
// until their bucket leaves it, and do not count toward opening the circuit.
class Status extends EventEmitter {
  #native = null;
  #opened = () => false;
  #buckets;
  #bucketMs;
  #timer = null;
  #rotate = null;
  // Primed stats, and where their bucket is: the time or the rotation count it started at.
  #primed = null;
  #primedAt = 0;
  #rotations = 0;

  // opossum's signature: { rollingCountBuckets, rollingCountTimeout, rollingPercentilesEnabled,
  // enableSnapshots, rotateBucketController, stats }.
  constructor(options = {}) {
    super();
    this.#buckets = Number(options.rollingCountBuckets) || 10;
    this.#bucketMs = Math.floor((Number(options.rollingCountTimeout) || 10000) / this.#buckets);
    this.rollingPercentilesEnabled = options.rollingPercentilesEnabled !== false;
    this.enableSnapshots = options.enableSnapshots !== false;
    this.rotateBucketController = options.rotateBucketController;
    if (options.stats) this.#prime(options.stats);
  }

  #prime(stats) {
    this.#primed = { ...bucket(), ...stats };
    this.#primedAt = this.rotateBucketController ? this.#rotations : performance.now();
  }

  // Binds this status to a breaker's native circuit (the constructor's work in opossum).
  // `settings` are the breaker's: a status made beforehand takes its window shape.
  attach(native, opened, settings) {
    this.#native = native;
    this.#opened = opened;
    this.#buckets = settings.buckets;
    this.#bucketMs = settings.bucketMs;
    this.rollingPercentilesEnabled = settings.rollingPercentilesEnabled;
    this.enableSnapshots = settings.enableSnapshots;
    this.rotateBucketController = settings.rotateBucketController;
    if (this.#primed !== null) this.#primedAt = this.rotateBucketController ? this.#rotations : performance.now();
    if (this.rotateBucketController) {
      this.#rotate = () => {
        this.#rotations += 1;
        this.#native.rotate();
      };
      this.startListeneningForRotateEvent();
    }
    if (this.enableSnapshots && this.#timer === null) {
      this.#timer = setInterval(() => {
        if (this.listenerCount('snapshot') > 0) this.emit('snapshot', this.stats);
      }, Math.max(1, this.#bucketMs));
      this.#timer.unref();
    }
    return this;
  }

  // Which bucket the primed stats are in now (0: the current one), or -1 once they left.
  #primedAge() {
    if (this.#primed === null) return -1;
    const age = this.rotateBucketController ? this.#rotations - this.#primedAt : Math.floor((performance.now() - this.#primedAt) / Math.max(1, this.#bucketMs));
    if (age >= this.#buckets) {
      this.#primed = null;
      return -1;
    }
    return age;
  }

  get stats() {
    const n = this.#native === null ? null : this.#native.stats();
    const totals = n === null ? bucket() : fromNative(n);
    const age = this.#primedAge();
    if (age >= 0) for (const k of COUNTS) totals[k] += Number(this.#primed[k]) || 0;
    if (this.rollingPercentilesEnabled) {
      totals.latencyMean = n === null ? 0 : n.latencyMean;
      if (n !== null) for (const [p, v] of n.percentiles) totals.percentiles[p] = v;
      else for (const p of PERCENTILES) totals.percentiles[p] = 0;
    } else {
      totals.latencyMean = -1;
      for (const p of PERCENTILES) totals.percentiles[p] = -1;
    }
    return totals;
  }

  // The window's buckets, the current one first; `isCircuitBreakerOpen` on the current one.
  get window() {
    const w = this.#native === null ? Array.from({ length: this.#buckets }, bucket) : this.#native.buckets().map(fromNative);
    const age = this.#primedAge();
    if (age >= 0 && age < w.length) for (const k of COUNTS) w[age][k] += Number(this.#primed[k]) || 0;
    if (w.length > 0) w[0].isCircuitBreakerOpen = this.#opened();
    return w;
  }

  // opossum's names, spelling included.
  startListeneningForRotateEvent() {
    const c = this.rotateBucketController;
    if (c && this.#rotate !== null && c.listenerCount('rotate', this.#rotate) === 0) c.on('rotate', this.#rotate);
  }

  removeRotateBucketControllerListener() {
    const c = this.rotateBucketController;
    if (c && this.#rotate !== null) c.removeListener('rotate', this.#rotate);
  }

  shutdown() {
    this.removeAllListeners();
    this.removeRotateBucketControllerListener();
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

module.exports = { Status };
