'use strict';

const { performance } = require('node:perf_hooks');

// Every call of one breaker gets the same timeout, so deadlines come due in the order the
// calls started: a FIFO and ONE timer armed for the oldest running call replace a
// setTimeout/clearTimeout pair per call (opossum's), the largest part of its per-call cost.
// Settled calls stay in the queue until the head passes them or a compaction drops them,
// which keeps it under about twice the calls running, however many go through.
class TimeoutQueue {
  #ms;
  #onTimeout;
  #queue = [];
  #head = 0;
  #live = 0;
  #timer = null;
  // The timer is unref'd while no call runs: an idle breaker never keeps the process alive
  // (opossum clears its per-call timer; toggling the ref is cheaper than re-arming).
  #idle = false;
  // After the breaker's shutdown: the calls already queued still time out, on a timer that
  // never holds the process open.
  #unrefd = false;

  constructor(ms, onTimeout) {
    this.#ms = ms;
    this.#onTimeout = onTimeout;
  }

  // `call.settled` is set by the owner when the call ends some other way.
  add(call, now) {
    call.deadline = now + this.#ms;
    this.#queue.push(call);
    this.#live += 1;
    if (this.#queue.length - this.#head > 2 * this.#live + 64) this.#compact();
    if (this.#timer === null) this.#arm(this.#ms);
    else if (this.#idle && !this.#unrefd) {
      this.#timer.ref();
      this.#idle = false;
    }
  }

  // A call left the queue's care (settled before its deadline).
  done() {
    this.#live -= 1;
    if (this.#live === 0 && this.#timer !== null) {
      this.#timer.unref();
      this.#idle = true;
    }
  }

  #compact() {
    this.#queue = this.#queue.slice(this.#head).filter((c) => !c.settled);
    this.#head = 0;
  }

  #arm(ms) {
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(ms)));
    this.#idle = false;
    if (this.#live === 0 || this.#unrefd) {
      this.#timer.unref();
      this.#idle = true;
    }
  }

  #fire() {
    this.#timer = null;
    const now = performance.now();
    // The queue is read afresh at each step: a listener of a timeout may fire calls, which
    // add to it (and may compact it).
    while (this.#head < this.#queue.length) {
      const q = this.#queue;
      const call = q[this.#head];
      if (call.settled) {
        q[this.#head++] = undefined;
        continue;
      }
      // The loop's clock may run a little behind performance.now(): wait for the rest.
      if (call.deadline > now) break;
      q[this.#head++] = undefined;
      this.#live -= 1;
      // The owner settles the call, and its listeners cannot throw out of it; anything else
      // that throws must not stop the other calls' timeouts nor the re-arm.
      try {
        this.#onTimeout(call);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    // A call fired from a listener armed a timer for its own deadline: the head's is sooner.
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else {
      if (this.#head > 1024) this.#compact();
      this.#arm(this.#queue[this.#head].deadline - now);
    }
  }

  // The breaker shut down: queued calls keep their deadlines, the timer no longer holds
  // the process open.
  unref() {
    this.#unrefd = true;
    if (this.#timer !== null) this.#timer.unref();
  }
}

module.exports = { TimeoutQueue };
