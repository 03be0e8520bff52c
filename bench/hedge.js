'use strict';

// node bench/hedge.js [--seconds 10] [--callers 40] [--slow-ms 300] [--fast-ms 2] [--slow-pct 5] [--json]
//
// Hedged reads (issue 31): an upstream in its own process that answers `--slow-pct` % of
// reads after `--slow-ms` and the rest after `--fast-ms`; `--callers` callers each firing GETs
// in a loop for `--seconds`, against three breakers in turn: hedging off, `hedgeAfterMs: 25`
// and `hedgeAfterMs: 'auto'`. Reports p50 and p99 of the calls and the upstream requests per
// call, side by side. A second row sends every read slow: hedges must then stay within the
// retry budget they draw from (20 % of the calls of the last 10 s plus 10/s, the defaults).
// Goal (row 1): p99 at most a quarter of the unhedged p99, with at most 10 % extra upstream
// requests. Prints a Markdown table (the one in docs/hedging.md) and, with --json, the raw rows.
// Every loop is bounded by --seconds; the upstream exits with this process (or after 5 min).

const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

if (process.argv[2] === 'upstream') {
  upstream();
} else {
  main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exitCode = 2;
  });
}

// The store: its own process, so the client's CPU does not slow it. `mode` is set per row
// through /__mode; /__count reads (and the client subtracts) the reads answered so far.
function upstream() {
  const fastMs = Number(process.argv[3]);
  const slowMs = Number(process.argv[4]);
  const slowPct = Number(process.argv[5]);
  let mode = 'mixed';
  let reads = 0;
  const body = '{"ok":true}';
  const server = http.createServer((req, res) => {
    if (req.url === '/__count') {
      res.end(String(reads));
      return;
    }
    if (req.url.startsWith('/__mode/')) {
      mode = req.url.slice('/__mode/'.length);
      res.end(mode);
      return;
    }
    reads += 1;
    const slow = mode === 'slow' || Math.random() * 100 < slowPct;
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    }, slow ? slowMs : fastMs);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  setTimeout(() => process.exit(0), 300_000).unref();
}

function startUpstream(fastMs, slowMs, slowPct) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [__filename, 'upstream', String(fastMs), String(slowMs), String(slowPct)], { stdio: ['pipe', 'pipe', 'inherit'] });
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

// A control request to the upstream, outside any breaker (a fresh connection each time).
function control(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`control ${p} timed out`)));
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function hedgeCounts(text, name) {
  const out = { won: 0, lost: 0, skipped: 0 };
  for (const r of Object.keys(out)) {
    const m = text.match(new RegExp(`dnastore_hedges_total\\{name="${name}",result="${r}"\\} (\\d+)`));
    if (m) out[r] = Number(m[1]);
  }
  return out;
}

async function scenario(lib, port, label, hedgeAfterMs, { seconds, callers }) {
  const name = `bench-hedge-${process.pid}-${label.replace(/[^A-Za-z0-9]/g, '')}-${Date.now() % 100000}`;
  const opts = {
    name,
    baseUrl: `http://127.0.0.1:${port}`,
    logger: false,
    env: {},
    // Every call its own request, no retries, no cache: requests per call are hedging's alone.
    coalesce: false,
    maxAttempts: 1,
    lkgMaxEntries: 0,
    timeout: 3000,
  };
  if (hedgeAfterMs !== undefined) opts.hedgeAfterMs = hedgeAfterMs;
  const b = lib.createBreaker(opts);
  try {
    // Warm the connections (and 'auto''s window) before counting.
    const warmEnd = Date.now() + 1000;
    await Promise.all(Array.from({ length: callers }, async (_, i) => {
      while (Date.now() < warmEnd) await b.fire(`/warm/${i}`);
    }));
    const before = Number(await control(port, '/__count'));
    const hedgesBefore = hedgeCounts(lib.metrics(), name);
    const latencies = [];
    let fallbacks = 0;
    const end = Date.now() + seconds * 1000;
    const caller = async (i) => {
      let k = 0;
      while (Date.now() < end) {
        const t0 = process.hrtime.bigint();
        const r = await b.fire(`/sigils/${i}/${k++}`);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (r && r.fallback) fallbacks += 1;
      }
    };
    await Promise.all(Array.from({ length: callers }, (_, i) => caller(i)));
    const requests = Number(await control(port, '/__count')) - before;
    const h = hedgeCounts(lib.metrics(), name);
    for (const k of Object.keys(h)) h[k] -= hedgesBefore[k];
    latencies.sort((x, y) => x - y);
    const calls = latencies.length;
    return {
      label,
      calls,
      fallbacks,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      requests,
      perCall: requests / calls,
      hedges: h,
      // What the retry budget grants over a run of this length (its window is 10 s): 20 %
      // of the calls plus 10 per second.
      budget: Math.round(0.2 * calls + 10 * Math.min(seconds, 10)),
    };
  } finally {
    b.shutdown();
  }
}

function table(rows) {
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const lines = [
    '| upstream | hedging | calls | p50 ms | p99 ms | upstream requests per call | hedges won / lost / skipped | retry budget (20 % + 10/s) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.row} | ${r.label} | ${r.calls} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.perCall, 3)} | ${r.hedges.won} / ${r.hedges.lost} / ${r.hedges.skipped} | ${r.label === 'off' ? '-' : r.budget} |`);
  }
  return lines.join('\n');
}

async function main() {
  const seconds = arg('seconds', 10);
  const callers = arg('callers', 40);
  const slowMs = arg('slow-ms', 300);
  const fastMs = arg('fast-ms', 2);
  const slowPct = arg('slow-pct', 5);
  const lib = require(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'));
  const up = await startUpstream(fastMs, slowMs, slowPct);
  const rows = [];
  try {
    for (const [mode, row] of [['mixed', `${100 - slowPct} % in ${fastMs} ms, ${slowPct} % in ${slowMs} ms`], ['slow', `every read ${slowMs} ms`]]) {
      await control(up.port, `/__mode/${mode}`);
      for (const [label, h] of [['off', undefined], ['hedgeAfterMs: 25', 25], ["hedgeAfterMs: 'auto'", 'auto']]) {
        const r = await scenario(lib, up.port, label, h, { seconds, callers });
        rows.push({ row, mode, ...r });
        process.stderr.write(`${row} / ${label}: ${r.calls} calls, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.perCall.toFixed(3)} requests per call\n`);
      }
    }
  } finally {
    up.child.stdin.end();
    up.child.kill();
  }
  process.stdout.write(`${table(rows)}\n\n`);
  const off = rows.find((r) => r.mode === 'mixed' && r.label === 'off');
  for (const r of rows.filter((x) => x.label !== 'off')) {
    if (r.mode === 'mixed') {
      const p99ok = r.p99 <= off.p99 / 4;
      const extra = r.perCall / off.perCall - 1;
      process.stdout.write(`goal, ${r.label}: p99 ${r.p99.toFixed(1)} ms vs a quarter of ${off.p99.toFixed(1)} ms: ${p99ok ? 'met' : 'NOT met'}; extra requests ${(100 * extra).toFixed(1)} %: ${extra <= 0.1 ? 'met' : 'NOT met'}\n`);
    } else {
      const extra = r.requests - r.calls;
      process.stdout.write(`budget, every read slow, ${r.label}: ${extra} extra requests, the budget grants ${r.budget}: ${extra <= r.budget ? 'within' : 'OVER'}\n`);
    }
  }
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(rows)}\n`);
}
