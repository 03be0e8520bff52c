'use strict';

// Test-only entry points, kept out of the public entry (index.js) and out of the published
// files: the tests require this file by its path.

const native = require('./native');
const { fromNative, settle } = require('./outcome');

// Proves the panic guards (see src/lib.rs): resolves through the same path as fire().
function testPanic(mode) {
  try {
    return native.__testPanic(mode).then((r) => settle(r, (f) => f));
  } catch (err) {
    return Promise.reject(fromNative(err));
  }
}

// How many calls ran inline (on this JS thread's own runtime, see src/bridge/local), its turns, the
// rounds (driver polls) of the turns that started a call, and the calls that finished before
// the first driver poll of a later turn (woken, then left queued: `lateWakes`).
function inlineStats() {
  const [calls, turns, startRounds, lateWakes] = native.__inlineStats();
  return { calls, turns, startRounds, lateWakes };
}

module.exports = { testPanic, inlineStats };
