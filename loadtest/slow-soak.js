'use strict';

// The slow-DNAStore soak (`node loadtest/run-soak.js --scenario slow`): DNAStore never fails,
// it gets slow. k6 drives the Sigil API at a constant rate (loadtest/soak.js: reads and 20 %
// durable writes) while the fake DNAStore answers in 5 ms, then in 2.5 s for 20 s (under the
// 3 s timeout: no call fails), then in 5 ms again. Run once with the issue-15 settings
// (slow-call tripping, a bulkhead with the adaptive limit) and once without (`--settings off`)
// to compare. It measures, every 250 ms:
//   - calls in flight at the fake DNAStore (its own count: the truth, whatever the client thinks);
//   - the API's event-loop delay (monitorEventLoopDelay in the API, GET /admin/runtime) and RSS;
//   - the breaker's state and the bulkhead's limit (GET /readyz), and when reads start being
//     served from last-known-good (dnastore_fallbacks_total{source="cache"} on /metrics);
// and prints one Markdown table row for loadtest/README.md, with the machine's load average.
//
//   node loadtest/run-soak.js --scenario slow [--settings on|off] [--coalesce on|off] [--rate 100] [--fast-before 15] [--slow 20] [--fast-after 25]
//
// Bounded: k6 runs fast-before + slow + fast-after seconds (60 by default), everything is
// stopped after that plus 90 s whatever happens.

const { startK6, apiEnv } = require('./k6');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startDnastore, spawnNode, stopProcess, stopOnSignals, freePort, request, HOST } = require('../examples/fake-dnastore/control');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

const SETTINGS = arg('settings', 'on');
// off: every read is its own DNAStore call (no coalescing of identical GETs), the
// arrival-rate x latency case of Little's law.
const COALESCE = arg('coalesce', 'on');
if (COALESCE !== 'on' && COALESCE !== 'off') throw new Error(`--coalesce ${COALESCE}: on or off`);
if (SETTINGS !== 'on' && SETTINGS !== 'off') throw new Error(`--settings ${SETTINGS}: on or off`);
const RATE = Number(arg('rate', 100));
const FAST_BEFORE_S = Number(arg('fast-before', 15));
const SLOW_S = Number(arg('slow', 20));
const FAST_AFTER_S = Number(arg('fast-after', 25));
const SLOW_MS = 2500;
const FAST_MS = 5;
const DURATION_S = FAST_BEFORE_S + SLOW_S + FAST_AFTER_S;
// Above the slow answers (2.5 s) and the 3 s timeout: a slow call succeeds.
const DEADLINE_MS = 4000;
const MAX_CONCURRENT = 32;
const HARD_LIMIT_MS = (DURATION_S + 90) * 1000;
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-slow-soak-'));
const SUMMARY = path.join(TMP, 'summary.json');

const API_ENV = apiEnv({ timeoutMs: 3000, deadlineMs: DEADLINE_MS, tmp: TMP });
// The issue-15 settings under test.
const NEW_SETTINGS = {
  DNASTORE_CIRCUIT_SLOW_CALL_MS: '1000',
  DNASTORE_CIRCUIT_SLOW_CALL_RATE: '50',
  DNASTORE_MAX_CONCURRENT: String(MAX_CONCURRENT),
  DNASTORE_MAX_QUEUED: '8',
  DNASTORE_QUEUE_TIMEOUT_MS: '50',
  DNASTORE_CONCURRENCY_LIMIT: 'adaptive',
  DNASTORE_MIN_CONCURRENCY: '2',
};

let store;
let api;
let k6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let t0 = Date.now();
const log = (msg) => process.stderr.write(`[slow-soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);

async function cleanup() {
  if (k6 && k6.exitCode === null) k6.kill('SIGTERM');
  await Promise.all([api && stopProcess(api), store && store.close()]);
  fs.rmSync(TMP, { recursive: true, force: true });
}

async function getJson(url) {
  try {
    return (await request('GET', url, { timeout: 1000 })).json;
  } catch {
    return undefined;
  }
}

async function cacheFallbacks(base) {
  try {
    const text = (await request('GET', `${base}/metrics`, { timeout: 1000 })).body;
    return Number(/^dnastore_fallbacks_total\{[^}]*source="cache"[^}]*\} (\S+)/m.exec(text)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

// Samples every 250 ms until `done()`; times are seconds since the step to 2.5 s.
async function watch(base, stepAt, done) {
  const m = { maxInflight: 0, loopP99: 0, loopMax: 0, rssMax: 0, lkgAt: null, reactedAt: null, reaction: null, recoveredAt: null, minLimit: null, opened: false };
  const fastAgainAt = stepAt + SLOW_S * 1000;
  let cacheBefore = NaN;
  let tick = 0;
  while (!done()) {
    const now = Date.now();
    const since = (now - stepAt) / 1000;
    const [fake, ready, rt] = await Promise.all([
      getJson(`${store.url}/__control/stats`),
      getJson(`${base}/readyz`),
      // Reset each second: p99 is per 1 s window, the table keeps the worst window.
      getJson(`${base}/admin/runtime${tick % 4 === 3 ? '?reset=1' : ''}`),
    ]);
    if (fake) m.maxInflight = Math.max(m.maxInflight, fake.maxInflight);
    if (rt) {
      m.loopP99 = Math.max(m.loopP99, rt.eventLoopDelayMs.p99);
      m.loopMax = Math.max(m.loopMax, rt.eventLoopDelayMs.max);
      m.rssMax = Math.max(m.rssMax, rt.rssBytes);
    }
    const b = ready?.breakers?.dnastore;
    if (b && now >= stepAt) {
      const limited = b.bulkhead && b.bulkhead.limit < MAX_CONCURRENT;
      if (b.bulkhead) m.minLimit = Math.min(m.minLimit ?? Infinity, b.bulkhead.limit);
      if (b.state !== 'closed') m.opened = true;
      if (m.reactedAt === null && (b.state !== 'closed' || limited)) {
        m.reactedAt = since;
        m.reaction = b.state !== 'closed' ? `circuit ${b.state}` : `limit ${b.bulkhead.limit}`;
      }
      if (now >= fastAgainAt && m.recoveredAt === null && b.state === 'closed' && (!b.bulkhead || b.bulkhead.limit === MAX_CONCURRENT)) {
        m.recoveredAt = (now - fastAgainAt) / 1000;
      }
    }
    // Reads served from last-known-good: the first cache fallback after the step.
    if (tick % 2 === 0) {
      const c = await cacheFallbacks(base);
      if (now < stepAt) cacheBefore = c;
      else if (m.lkgAt === null && c > (Number.isNaN(cacheBefore) ? 0 : cacheBefore)) m.lkgAt = since;
    }
    tick++;
    await sleep(Math.max(0, 250 - (Date.now() - now)));
  }
  return m;
}

function summary() {
  try {
    return JSON.parse(fs.readFileSync(SUMMARY, 'utf8')).metrics;
  } catch {
    return null;
  }
}

async function main() {
  stopOnSignals(cleanup);
  process.on('exit', () => {
    if (k6 && k6.exitCode === null) k6.kill('SIGKILL');
    if (api && api.child.exitCode === null) api.child.kill('SIGKILL');
    if (store && store.running) process.kill(store.pid, 'SIGKILL');
  });
  const load0 = os.loadavg();
  store = await startDnastore();
  const port = await freePort();
  const logLines = [];
  api = spawnNode({
    script: path.join(__dirname, '..', 'examples', 'sigil-api', 'sigil-api.cjs'),
    env: { ...API_ENV, ...(SETTINGS === 'on' ? NEW_SETTINGS : {}), DNASTORE_COALESCE: COALESCE === 'on' ? '1' : '0', PORT: String(port), DNASTORE_URL: store.url },
    isReady: (rec) => rec.msg === 'sigil-api listening',
    keepLines: 100,
    onLine: (rec) => {
      if (/DNAStore circuit breaker/.test(rec.msg || '') && logLines.length < 20) logLines.push(rec.msg);
    },
  });
  await api.ready;
  const base = `http://${HOST}:${port}`;
  t0 = Date.now();
  log(`settings ${SETTINGS}; DNAStore ${store.url} (pid ${store.pid}); Sigil API ${base} (pid ${api.pid}); k6 ${RATE} req/s for ${DURATION_S}s; ` +
    `DNAStore ${FAST_MS} ms, ${SLOW_MS} ms from ${FAST_BEFORE_S}s for ${SLOW_S}s, then ${FAST_MS} ms`);
  const run = startK6({ base, rate: RATE, duration: `${DURATION_S}s`, deadlineMs: DEADLINE_MS, runId: crypto.randomBytes(4).toString('hex'), summary: SUMMARY, ledger: path.join(TMP, 'ledger.jsonl'), quiet: true, log });
  k6 = run.proc;
  const k6Exit = run.exit;
  const hardLimit = setTimeout(() => k6.kill('SIGTERM'), HARD_LIMIT_MS);
  // k6's setup (warming 20 sigils) takes a moment; the step is timed by the fake DNAStore
  // itself from when this mode is set.
  await sleep(1000);
  await request('POST', `${store.url}/__control/stats/reset`);
  await store.setMode('latency', { shape: 'step', fromMs: FAST_MS, toMs: SLOW_MS, afterMs: (FAST_BEFORE_S - 1) * 1000, holdMs: SLOW_S * 1000 });
  const stepAt = Date.now() + (FAST_BEFORE_S - 1) * 1000;
  const m = await watch(base, stepAt, () => run.done());
  const code = await k6Exit;
  clearTimeout(hardLimit);
  const load1 = os.loadavg();
  const s = summary();
  const read = s?.['http_req_duration{kind:read}'];
  const rate = (k) => (s?.[k] ? `${(100 * s[k].value).toFixed(2)} %` : 'n/a');
  const secs = (v) => (v === null ? 'never' : `${v.toFixed(1)} s`);
  const row = [
    `${SETTINGS === 'on' ? `on (max ${MAX_CONCURRENT}, adaptive)` : 'off'}${COALESCE === 'off' ? ', coalesce off' : ''}`,
    read ? `${read['p(99)'].toFixed(0)} ms` : 'n/a',
    rate('read_failed'),
    rate('read_served_from_cache'),
    String(m.maxInflight),
    `${m.loopP99.toFixed(0)} / ${m.loopMax.toFixed(0)} ms`,
    `${(m.rssMax / 1048576).toFixed(0)} MiB`,
    secs(m.lkgAt),
    m.reactedAt === null ? 'never' : `${m.reactedAt.toFixed(1)} s (${m.reaction})`,
    // Without the settings there is no limit to recover and the breaker never opened.
    SETTINGS === 'on' ? `${secs(m.recoveredAt)} (min limit ${m.minLimit})` : 'n/a',
    `${load0[0].toFixed(1)} -> ${load1[0].toFixed(1)}`,
    String(code),
  ];
  process.stdout.write([
    '',
    `slow soak, settings ${SETTINGS}: ${RATE} req/s for ${DURATION_S}s, DNAStore ${SLOW_MS} ms for ${SLOW_S}s; k6 exit ${code}`,
    `  requests ${s?.http_reqs?.count ?? '?'}; writes: ${s?.writes_created_201?.count ?? 0} 201, ${s?.writes_queued_202?.count ?? 0} 202, ${s?.writes_rejected_503?.count ?? 0} 503; write failed ${rate('write_failed')}`,
    `  transitions: ${logLines.join(' | ') || 'none'}`,
    '| settings | read p99 | reads failed | reads from LKG | max in flight at DNAStore | API event-loop delay p99 / max | API RSS max | LKG served after | reacted after | recovered after | load avg (1 min) | k6 exit |',
    `| ${row.join(' | ')} |`,
    '',
  ].join('\n'));
  await cleanup();
  return code;
}

module.exports = { main };
