'use strict';

const { EventEmitter } = require('node:events');

// opossum's `status`: stats of the window and a `snapshot` event per bucket interval.
class Status extends EventEmitter {
  #breaker;
  #timer = null;

  constructor(breaker, bucketMs, snapshots) {
    super();
    this.#breaker = breaker;
    if (snapshots) {
      this.#timer = setInterval(() => {
        if (this.listenerCount('snapshot') > 0) this.emit('snapshot', this.stats);
      }, bucketMs);
      this.#timer.unref();
    }
  }

  get stats() {
    return this.#breaker.stats;
  }

  // The native window is not split into JS buckets: one entry with its totals.
  get window() {
    return [{ ...this.stats, isCircuitBreakerOpen: this.#breaker.opened }];
  }

  shutdown() {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.removeAllListeners();
  }
}

module.exports = { Status };
