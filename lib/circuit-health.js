'use strict';

// opossum's health check for the `CircuitBreaker` class: `func` runs at once and every
// `interval` ms (an unref'd interval) with the breaker as `this`; a rejection (or a throw)
// calls `failed(err)`, which emits 'healthCheckFailed' and opens the circuit.
function startHealthCheck(breaker, func, interval, isShut, failed) {
  interval = interval || 5000;
  if (typeof func !== 'function') throw new TypeError('Health check function must be a function');
  if (isNaN(interval)) throw new TypeError('Health check interval must be a number');
  const check = () => {
    if (isShut()) return;
    let p;
    try {
      p = func.apply(breaker);
    } catch (e) {
      p = Promise.reject(e);
    }
    Promise.resolve(p).catch((e) => {
      if (!isShut()) failed(e);
    });
  };
  const timer = setInterval(check, interval);
  timer.unref();
  check();
  return timer;
}

module.exports = { startHealthCheck };
