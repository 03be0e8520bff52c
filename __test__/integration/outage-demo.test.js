'use strict';

// `npm run demo` as a user runs it: a real run ends by itself in about 30 s with exit 0,
// shows writes queued during the outage and delivered after it with none lost or stored
// twice, and Ctrl-C stops it leaving no process and no outbox file behind.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const DEMO = path.join(__dirname, '..', '..', 'examples', 'outage-demo.js');

function run({ interruptAfter } = {}) {
  const child = spawn(process.execPath, [DEMO], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
    if (interruptAfter && interruptAfter.test(out) && child.exitCode === null && !child.interrupted) {
      child.interrupted = true;
      child.kill('SIGINT');
    }
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  // Bounded: the demo's own hard end is 45 s.
  const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out });
    }),
  );
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const header = (out) => {
  const m = /fake DNAStore pid (\d+) .*Sigil API pid (\d+) .*its outbox in (\S+)/.exec(out);
  return m && { pids: [Number(m[1]), Number(m[2])], outboxDir: m[3] };
};

test('a full run ends by itself with exit 0: writes queued during the outage, delivered after it, none lost or duplicated', async () => {
  const started = Date.now();
  const { code, out } = await run();
  const h = header(out);
  const queued = Number(/queued \(202\)\s+(\d+)/.exec(out)?.[1]);
  expect({ code, queued: queued > 0, drained: /outbox drained/.test(out), audit: /write audit\s+\d+ writes answered 201\/202: 0 lost, 0 duplicated/.test(out) }).toEqual({
    code: 0,
    queued: true,
    drained: true,
    audit: true,
  });
  expect(/outbox\s+(\d+) writes queued, \1 delivered after the outage, 0 dead letters, 0 still queued/.test(out)).toBe(true);
  expect(Date.now() - started).toBeLessThan(50000);
  expect({ leftover: h.pids.filter(alive), outboxDir: fs.existsSync(h.outboxDir) }).toEqual({ leftover: [], outboxDir: false });
}, 70000);

test('Ctrl-C stops it at once: exit 130, no process and no outbox file left', async () => {
  const { code, out } = await run({ interruptAfter: /\n\s+2s / });
  const h = header(out);
  expect({ code, said: /SIGINT: stopping the demo's processes/.test(out) }).toEqual({ code: 130, said: true });
  expect({ leftover: h.pids.filter(alive), outboxDir: fs.existsSync(h.outboxDir) }).toEqual({ leftover: [], outboxDir: false });
}, 30000);
