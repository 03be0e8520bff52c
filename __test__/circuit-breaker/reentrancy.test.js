'use strict';

// The listener re-entrancy matrix: every event x every re-entrant action a listener may
// take (shutdown, fire, open, close, disable, or throw), on opossum 9 and on this class.
// Each case runs in a child process of its own (reentrancy-case.js) that records what would
// have crashed the process, so a crash cannot take this worker down, and shows as a
// failed row. This class must do no worse than opossum anywhere: no uncaught exception, no
// unhandled rejection, no call left unsettled, no synchronous throw out of fire(). opossum's
// own faults are listed too (docs/opossum.md, "Differences from opossum": listeners).

const path = require('node:path');
const { spawn } = require('node:child_process');

const EVENTS = ['fire', 'success', 'failure', 'timeout', 'reject', 'open', 'halfOpen', 'close', 'fallback', 'semaphoreLocked', 'healthCheckFailed', 'shutdown', 'cacheHit', 'cacheMiss'];
const ACTIONS = ['shutdown', 'fire', 'open', 'close', 'disable', 'throw'];
const CASE = path.join(__dirname, 'reentrancy-case.js');

function runCase(impl, event, action) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CASE, impl, event, action], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop();
      try {
        resolve(JSON.parse(line));
      } catch {
        resolve({ impl, event, action, died: `exit ${code}: ${err.trim().split('\n').slice(-2).join(' | ')}` });
      }
    });
  });
}

// What went wrong in a case: the faults this class must not have.
function faults(r) {
  const f = [];
  if (r.died) f.push(`died: ${r.died}`);
  if (r.uncaught && r.uncaught.length) f.push(`uncaught: ${r.uncaught.join('; ')}`);
  if (r.unhandled && r.unhandled.length) f.push(`unhandled rejection: ${r.unhandled.join('; ')}`);
  if (r.unsettled) f.push(`${r.unsettled} call(s) never settled`);
  if (r.syncThrows) f.push(`fire() threw ${r.syncThrows} time(s)`);
  if (r.driverThrew) f.push(`open(), shutdown() or healthCheck() threw: ${r.driverThrew}`);
  return f;
}

const results = new Map();

beforeAll(async () => {
  const cases = [];
  for (const impl of ['opossum', 'dnastore']) for (const e of EVENTS) for (const a of ACTIONS) cases.push([impl, e, a]);
  let next = 0;
  // Four children at a time: each case mostly waits on its timers.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < cases.length) {
        const c = cases[next++];
        results.set(c.join(' '), await runCase(...c));
      }
    }),
  );
}, 600_000);

describe.each(EVENTS)("a '%s' listener that re-enters", (event) => {
  test.each(ACTIONS)('%s: this class does no worse than opossum', (action) => {
    const ours = results.get(`dnastore ${event} ${action}`);
    const theirs = results.get(`opossum ${event} ${action}`);
    // The scenario did make the event happen, on both.
    expect({ heard: ours.heard, opossumHeard: theirs.heard }).toEqual({ heard: true, opossumHeard: true });
    expect(faults(ours)).toEqual([]);
  });
});

test("opossum's faults in the matrix (the cases this class does better on)", () => {
  const bad = [];
  for (const e of EVENTS) {
    for (const a of ACTIONS) {
      const f = faults(results.get(`opossum ${e} ${a}`));
      if (f.length) bad.push(`${e} ${a}: ${f.join(', ')}`);
    }
  }
  // opossum 9 throws out of fire() or shutdown(), or crashes, for a throwing listener of these.
  expect(bad.map((b) => b.split(':')[0])).toEqual(['fire throw', 'failure throw', 'timeout throw', 'reject throw', 'open throw', 'halfOpen throw', 'healthCheckFailed throw', 'shutdown throw', 'cacheHit throw', 'cacheMiss throw']);
});
