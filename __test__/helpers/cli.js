'use strict';

// Runs the operator command as a user does: `node bin/dnastore-breaker.js ...` in a child
// process, with only the environment given (the test process's DNASTORE_* never leak in).
// Resolves { code, stdout, stderr, json } (json: stdout parsed, when it is JSON).

const { execFile } = require('node:child_process');
const path = require('node:path');

const BIN = path.join(__dirname, '..', '..', 'bin', 'dnastore-breaker.js');

function cli(args, { env = {}, cwd, timeout = 30000 } = {}) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, cwd, timeout, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        let json;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr, json });
      },
    );
  });
}

module.exports = { cli, BIN };

const { spawn } = require('node:child_process');
const readline = require('node:readline');

const HOLDER = path.join(__dirname, '..', 'fixtures', 'outbox-holder.js');

/**
 * A service process holding an outbox (fixtures/outbox-holder.js) with queued writes and
 * dead letters. Resolves { ids, child, exited, stop } once it is ready; `stop()` sends
 * SIGTERM (a clean shutdown) by its PID and waits for it to exit.
 */
async function holder(opts) {
  const child = spawn(process.execPath, [HOLDER, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ids = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the holder was not ready within 30 s')), 30_000);
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      if (!l.startsWith('READY ')) return;
      clearTimeout(timer);
      resolve(JSON.parse(l.slice('READY '.length)));
    });
    exited.then(({ code }) => reject(new Error(`the holder exited (${code}) before it was ready`)));
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM');
    return exited;
  };
  return { ids, child, exited, stop };
}

module.exports.holder = holder;
