'use strict';

// One case of the listener re-entrancy matrix (reentrancy.test.js), run in a child process
// of its own: `node reentrancy-case.js <opossum|dnastore> <event> <action>`.
// A breaker is driven until it emits <event>; the first time it does, a listener runs
// <action> (shutdown, fire, open, close, disable, or throw). Process-level handlers record
// what would have crashed the process (an uncaught exception, an unhandled rejection), so
// the case reports on stdout instead of dying: one JSON line with those, the calls whose
// promise never settled, and the fire() calls that threw synchronously.

const path = require('node:path');

const [impl, event, action] = process.argv.slice(2);
const CB = impl === 'opossum' ? require('opossum') : require(path.join(__dirname, '..', '..')).CircuitBreaker;

const report = { impl, event, action, heard: false, uncaught: [], unhandled: [], unsettled: 0, syncThrows: 0 };
process.on('uncaughtException', (e) => report.uncaught.push(String(e && e.message)));
process.on('unhandledRejection', (e) => report.unhandled.push(String(e && e.message)));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pending = new Set();

// Every call is tracked until it settles; a synchronous throw out of fire() is counted.
function fire(b, ...args) {
  let p;
  try {
    p = b.fire(...args);
  } catch {
    report.syncThrows++;
    return;
  }
  pending.add(p);
  p.then(
    () => pending.delete(p),
    () => pending.delete(p),
  );
}

const ok = async (x) => x;
const fail = async () => {
  throw new Error('action failed');
};
const slow = () => new Promise((r) => setTimeout(r, 200, 'late'));

// How to make each event happen: breaker options and the driving steps.
const SCENARIOS = {
  fire: [ok, {}, async (b) => fire(b, 1)],
  success: [ok, {}, async (b) => fire(b, 1)],
  failure: [fail, {}, async (b) => fire(b, 1)],
  timeout: [slow, { timeout: 10 }, async (b) => fire(b, 1)],
  reject: [ok, {}, async (b) => (b.open(), fire(b, 1))],
  open: [fail, { errorThresholdPercentage: 1 }, async (b) => fire(b, 1)],
  halfOpen: [ok, { resetTimeout: 20 }, async (b) => (b.open(), await sleep(60), fire(b, 1))],
  close: [ok, { resetTimeout: 20 }, async (b) => (b.open(), await sleep(60), fire(b, 1))],
  fallback: [fail, {}, async (b) => (b.fallback(() => 'fb'), fire(b, 1))],
  semaphoreLocked: [slow, { capacity: 1, timeout: 50 }, async (b) => (fire(b, 1), fire(b, 2))],
  healthCheckFailed: [ok, {}, async (b) => b.healthCheck(() => Promise.reject(new Error('unhealthy')), 60_000)],
  shutdown: [ok, {}, async (b) => (fire(b, 1), b.shutdown())],
  cacheHit: [ok, { cache: true }, async (b) => (fire(b, 1), await sleep(10), fire(b, 1))],
  cacheMiss: [ok, { cache: true }, async (b) => fire(b, 1)],
};

const ACTIONS = {
  shutdown: (b) => b.shutdown(),
  fire: (b) => fire(b, 'from listener'),
  open: (b) => b.open(),
  close: (b) => b.close(),
  disable: (b) => b.disable(),
  throw: () => {
    throw new Error('listener threw');
  },
};

async function main() {
  const [fn, opts, drive] = SCENARIOS[event];
  const b = new CB(fn, { logger: false, resetTimeout: 10_000, ...opts });
  let done = false;
  b.on(event, () => {
    if (done) return;
    done = true;
    report.heard = true;
    ACTIONS[action](b);
  });
  try {
    await drive(b);
  } catch (e) {
    // A driving step that threw (open(), shutdown(), healthCheck() passing on a listener's throw).
    report.driverThrew = String(e && e.message);
  }
  const deadline = Date.now() + 1500;
  while (pending.size > 0 && Date.now() < deadline) await sleep(10);
  await sleep(50);
  report.unsettled = pending.size;
  try {
    if (!b.isShutdown) b.shutdown();
  } catch {
    // reported above if it matters
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

main();
