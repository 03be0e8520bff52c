'use strict';

// Runs the outbox writer fixture (fixtures/outbox-writer.js) in its own process, for the
// tests that kill it with SIGKILL (outbox-crash.test.js, outbox-wal.test.js). Returns
// { child, lines, exited, waitFor, kill }; the caller kills it by its PID.

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'outbox-writer.js');

function writer(opts) {
  const child = spawn(process.execPath, [FIXTURE, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_PATH: path.join(__dirname, '..', '..', '..') },
  });
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const waitFor = (pred, ms) =>
    new Promise((resolve, reject) => {
      const check = () => (pred(lines) ? resolve() : waiters.push(check));
      setTimeout(() => reject(new Error(`writer: condition not met within ${ms} ms (last: ${lines.at(-1)})`)), ms).unref();
      check();
    });
  return { child, lines, exited, waitFor, kill: () => process.kill(child.pid, 'SIGKILL') };
}

module.exports = { writer };
