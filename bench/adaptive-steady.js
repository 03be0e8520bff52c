'use strict';

// node bench/adaptive-steady.js [--seconds 10] [--delay 2] [--callers 40] [--max 60] [--fixed]
//
// The adaptive limit at a steady DNAStore latency: an upstream in its own process answering
// every call after `--delay` ms, `--callers` callers each firing in a loop against a breaker
// with `concurrencyLimit: 'adaptive'`, `maxConcurrent: --max`. DNAStore's latency does not
// change, so the limit has nothing to react to and no call should be shed (issue 25, item 2:
// before the limit's sampling window, 1 to 4 % of calls got ECONCURRENCY here, the limit
// dipping to 9-30 for a fraction of a second, because the client's own CPU made the latency
// it measured jitter). `--fixed` runs the same load against a fixed cap, for comparison.
// Prints one JSON line: calls, shed, the lowest limit seen (polled every 5 ms) and the
// bulkhead's rejection counters. Exits 1 when a call was shed.
// `__test__/adaptive-steady.test.js` runs it briefly.

const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

if (process.argv[2] === 'upstream') {
  // The store: a fixed service time, in its own process so the client's CPU does not slow it.
  const delay = Number(process.argv[3]);
  const body = '{"ok":true}';
  const server = http.createServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    }, delay);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  // Ends with its parent (stdin closes) or after a minute at most.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  setTimeout(() => process.exit(0), 60_000).unref();
} else {
  main().then(
    (shed) => {
      process.exitCode = shed > 0 ? 1 : 0;
    },
    (err) => {
      process.stderr.write(`${err.stack || err}\n`);
      process.exitCode = 2;
    },
  );
}

function startUpstream(delay) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, 'upstream', String(delay)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the upstream did not start within 10 s'));
    }, 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve({ port: Number(out.trim()), child });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the upstream exited with ${code}`));
    });
  });
}

async function main() {
  const seconds = arg('seconds', 10);
  const delay = arg('delay', 2);
  const callers = arg('callers', 40);
  const max = arg('max', 60);
  const fixed = process.argv.includes('--fixed');
  const { createBreaker } = require(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'));
  const up = await startUpstream(delay);
  const b = createBreaker({
    name: `adaptive-steady-${process.pid}`,
    baseUrl: `http://127.0.0.1:${up.port}`,
    logger: false,
    maxConcurrent: max,
    concurrencyLimit: fixed ? 'fixed' : 'adaptive',
    // Every call goes to the store (identical GETs would otherwise share one request).
    coalesce: false,
    // The store is healthy: nothing but the bulkhead may turn a call into a fallback.
    maxAttempts: 1,
  });
  let calls = 0;
  let shed = 0;
  let other = 0;
  let minLimit = max;
  const poll = setInterval(() => {
    minLimit = Math.min(minLimit, b.stats().bulkhead.limit);
  }, 5);
  try {
    // Warm the connections before counting.
    await Promise.all(Array.from({ length: callers }, () => b.fire('/warm')));
    const end = Date.now() + seconds * 1000;
    const caller = async () => {
      while (Date.now() < end) {
        const r = await b.fire('/x');
        calls += 1;
        if (r && r.fallback) {
          if (r.code === 'ECONCURRENCY') shed += 1;
          else other += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: callers }, caller));
  } finally {
    clearInterval(poll);
    up.child.stdin.end();
    up.child.kill();
  }
  const { bulkhead } = b.stats();
  b.shutdown();
  const report = { mode: fixed ? 'fixed' : 'adaptive', delayMs: delay, callers, seconds, calls, shed, shedPercent: Number(((100 * shed) / Math.max(1, calls)).toFixed(3)), otherFallbacks: other, minLimit, bulkhead };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return shed;
}
