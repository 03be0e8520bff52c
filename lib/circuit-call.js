'use strict';

// One call of the `CircuitBreaker` class: its record while it runs, and the errors the
// breaker answers calls with (ETIMEDOUT, EOPENBREAKER, ESEMLOCKED, ESHUTDOWN).

const OUR_ERROR = Symbol('dnastore-breaker circuit error');

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

function isOurError(error) {
  return error !== null && typeof error === 'object' && error[OUR_ERROR] === true;
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

// The caller has its value already when its cache cannot store it: the next call misses.
// Thrown where it is called it would be an unhandled rejection, which ends a Node 20 process.
function storeInCache(o, key, value) {
  try {
    o.cacheTransport.set(key, value, o.cacheTTL > 0 ? Date.now() + o.cacheTTL : 0);
  } catch {
    // Nothing to do: see above.
  }
}

module.exports = { Pending, buildError, isOurError, storeInCache };
