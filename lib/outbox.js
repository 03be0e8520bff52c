'use strict';

// `breaker.outbox`: the durable outbox's operations. The Rust core owns the outbox (store,
// delivery, dead letters); this class only adapts the native methods to a small object.

class Outbox {
  #native;

  constructor(nativeBreaker) {
    this.#native = nativeBreaker;
  }

  /** { entries, bytes, inFlight, deadLetters, oldestAgeMs, enqueued, delivered, deadLettered, spilled, spilledBytes, forwarded } */
  stats() {
    return this.#native.outboxStats();
  }

  /**
   * Queued writes, oldest first (never their body or headers). A Promise: a fleet's outbox
   * (outboxRedisUrl) is read from Redis; it rejects when the store cannot be read.
   */
  list({ limit } = {}) {
    return this.#call(() => this.#native.outboxList(limit));
  }

  /** Writes DNAStore refused (with its answer), or that expired or failed their signature. A Promise, as list(). */
  deadLetters({ limit } = {}) {
    return this.#call(() => this.#native.outboxDeadLetters(limit));
  }

  /** Puts a dead letter back in the queue. Resolves false if there is none with `id`. */
  retry(id) {
    return this.#call(() => this.#native.outboxRetry(String(id)));
  }

  /** Removes a queued write (not while it is being delivered) or a dead letter for good. */
  discard(id) {
    return this.#call(() => this.#native.outboxDiscard(String(id)));
  }

  /** Resolves when the queue is empty or the circuit is open. */
  drain() {
    return this.#call(() => this.#native.outboxDrain());
  }

  #call(f) {
    try {
      return f();
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

module.exports = { Outbox };
