'use strict';

// The two implementations every expectation in this folder runs against: opossum@9 (the
// specification) and dnastore-breaker's CircuitBreaker. Where they differ on purpose the
// test says so and names the "Differences from opossum" entry of docs/opossum.md.

const Opossum = require('opossum');
const { CircuitBreaker } = require('../..');

const IMPLS = [
  ['opossum', Opossum],
  ['dnastore', CircuitBreaker],
];

// Tracks breakers so each test file shuts them down (opossum's status timers, ours).
function factory() {
  const made = [];
  const make = (Impl, action, options = {}) => {
    // `logger` is ours (opossum ignores unknown options): keep test output quiet.
    const b = new Impl(action, { logger: false, ...options });
    made.push(b);
    return b;
  };
  afterEach(() => {
    for (const b of made.splice(0)) if (!b.isShutdown) b.shutdown();
  });
  return make;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ok = (v) => Promise.resolve(v);
const boom = () => Promise.reject(new Error('boom'));

// Settles all promises, ignoring their outcome.
const settle = (ps) => Promise.allSettled(ps);

module.exports = { IMPLS, factory, sleep, ok, boom, settle };
