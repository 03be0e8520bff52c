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

// opossum's options -> the core table's circuit options (validated there: numeric strings
// are read as numbers, a bad value is ECONFIG naming the option and its range).
function circuitOptions(o) {
  const t = o.timeout;
  return {
    timeout: t === false || t === 0 || t === '0' ? undefined : t,
    errorThresholdPercentage: o.errorThresholdPercentage,
    resetTimeout: o.resetTimeout,
    rollingCountTimeout: o.rollingCountTimeout,
    rollingCountBuckets: o.rollingCountBuckets,
    volumeThreshold: o.volumeThreshold,
    maxFailures: o.maxFailures,
    halfOpenMaxCalls: o.halfOpenMaxCalls,
    slowCallDurationMs: o.slowCallDurationMs,
    slowCallRateThreshold: o.slowCallRateThreshold,
  };
}

module.exports = { withDefaults, circuitOptions };
