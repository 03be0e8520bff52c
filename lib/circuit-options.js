'use strict';

// opossum 9's options for CircuitBreaker: its defaults filled in (on a copy: opossum
// mutates the caller's object), its checks with its messages, and the subset the core's
// option table validates.

const { MemoryCache } = require('./memory-cache');

// The caller's options with opossum's defaults; throws opossum's TypeErrors.
function withDefaults(options) {
  const o = { ...options };
  o.timeout = o.timeout ?? 10000;
  o.resetTimeout = o.resetTimeout ?? 30000;
  o.errorThresholdPercentage = o.errorThresholdPercentage ?? 50;
  o.rollingCountTimeout = o.rollingCountTimeout ?? 10000;
  o.rollingCountBuckets = o.rollingCountBuckets ?? 10;
  o.volumeThreshold = o.volumeThreshold ?? 0;
  // Native extras, off by default (opossum has neither): one trial while half-open.
  o.maxFailures = o.maxFailures ?? 0;
  o.halfOpenMaxCalls = o.halfOpenMaxCalls ?? 1;
  // A numeric string counts, as for every numeric option here (`process.env.X || 10`);
  // opossum would silently leave a string capacity unbounded.
  const capacity = typeof o.capacity === 'string' && /^\s*\d+\s*$/.test(o.capacity) ? Number(o.capacity) : o.capacity;
  o.capacity = Number.isInteger(capacity) ? capacity : Number.MAX_SAFE_INTEGER;
  o.errorFilter = o.errorFilter || (() => false);
  o.cacheTTL = o.cacheTTL ?? 0;
  o.cacheGetKey = o.cacheGetKey ?? ((...args) => JSON.stringify(args));
  o.enableSnapshots = o.enableSnapshots !== false;
  o.rollingPercentilesEnabled = o.rollingPercentilesEnabled !== false;
  o.coalesce = !!o.coalesce;
  o.coalesceResetOn = o.coalesceResetOn?.filter((e) => ['error', 'success', 'timeout'].includes(e)) || [];
  if (o.cache) {
    if (o.cacheTransport === undefined) o.cacheTransport = new MemoryCache(o.cacheSize);
    else if (typeof o.cacheTransport !== 'object' || !o.cacheTransport.get || !o.cacheTransport.set || !o.cacheTransport.flush) {
      throw new TypeError('options.cacheTransport should be an object with `get`, `set` and `flush` methods');
    }
  }
  if (o.autoRenewAbortController && !o.abortController) o.abortController = new AbortController();
  if (o.abortController && typeof o.abortController.abort !== 'function') {
    throw new TypeError('AbortController does not contain `abort()` method');
  }
  return o;
}

// A number, or a numeric string read as one; anything else as given (the table says what
// is wrong with it).
const num = (v) => (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v);

// opossum's options -> the core table's circuit options (validated there: a bad value is
// ECONFIG naming the option and its range), with opossum's meaning of the values it takes
// that the table does not: `table`, plus `extras` for the native circuit and the window's
// shape for the status.
function circuitOptions(o) {
  const t = num(o.timeout);
  const threshold = num(o.errorThresholdPercentage);
  const reset = num(o.resetTimeout);
  // opossum's status window: `rollingCountTimeout || 10000` split in
  // `rollingCountBuckets || 10` buckets of floor(timeout / buckets) ms each; the native
  // window is those buckets end to end (a whole multiple, as the table wants).
  let windowMs = num(o.rollingCountTimeout);
  let buckets = num(o.rollingCountBuckets);
  if (windowMs === 0) windowMs = 10000;
  if (buckets === 0) buckets = 10;
  let bucketMs = 0;
  if (Number.isInteger(windowMs) && Number.isInteger(buckets) && windowMs > 0 && buckets > 0) {
    bucketMs = Math.max(1, Math.floor(windowMs / buckets));
    windowMs = bucketMs * buckets;
  }
  return {
    table: {
      // No timeout at all: the class runs none (the table's own default stands unused).
      timeout: t === false || t === 0 ? undefined : t,
      // 0: any failure opens (`extras.anyFailure`), which the table's 1..100 cannot say.
      errorThresholdPercentage: threshold === 0 ? undefined : threshold,
      // opossum's reset timer is a setTimeout: 0 waits Node's shortest delay, 1 ms.
      resetTimeout: reset === 0 ? 1 : reset,
      rollingCountTimeout: windowMs,
      rollingCountBuckets: buckets,
      volumeThreshold: o.volumeThreshold,
      maxFailures: o.maxFailures,
      halfOpenMaxCalls: o.halfOpenMaxCalls,
      slowCallDurationMs: o.slowCallDurationMs,
      slowCallRateThreshold: o.slowCallRateThreshold,
    },
    anyFailure: threshold === 0,
    // opossum warms up for options.rollingCountTimeout itself: 0 is no warm-up.
    warmUpPossible: num(o.rollingCountTimeout) !== 0,
    buckets,
    bucketMs,
  };
}

module.exports = { withDefaults, circuitOptions };
