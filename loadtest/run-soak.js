'use strict';

// Runs the k6 soak (loadtest/soak.js) against real processes: starts the fake DNAStore and
// the Sigil API (durable writes, its outbox in a temp dir), runs k6, and takes DNAStore down
// and up in cycles while k6 runs: by turns the process is stopped (`down`: refused, the
// write surely not stored) and it stores writes but resets the connection before answering
// (`lostreply`: the outcome unknown, the case only the Idempotency-Key makes safe to send
// again). Then it waits (bounded) for the API's outbox to
// drain and audits the writes: what k6 was told (201/202 and their keys, from its console
// ledger) against what DNAStore holds. Exits non-zero when a k6 threshold failed or the
// audit found a write answered 201/202 lost or stored twice.
//
//   node loadtest/run-soak.js --duration 60s            # the CI run (< 2 minutes)
//   node loadtest/run-soak.js --rate 100 --duration 30m --up 60 --down 20   # the long soak
//   node loadtest/run-soak.js --scenario slow [--settings off]   # DNAStore slow, not down (slow-soak.js)
//
// Options: --rate (req/s, 100), --duration (k6 syntax, 60s), --up / --down (seconds per
// DNAStore cycle, 10 / 6), --outages (the kinds taken in turn, down,lostreply), --summary
// (path for k6's JSON summary export).

// --scenario slow: DNAStore slow rather than down, with and without the bulkhead
// (loadtest/slow-soak.js, its own driver).
if (process.argv[process.argv.indexOf('--scenario') + 1] === 'slow') {
  require('./slow-soak').main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${err.stack || err}\n`);
      process.exitCode = 1;
    },
  );
  return;
}

const { startK6, apiEnv } = require('./k6');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startDnastore, spawnNode, stopProcess, stopOnSignals, freePort, request, HOST } = require('../examples/fake-dnastore/control');
const { audit, parseLedger, formatAudit } = require('../examples/fake-dnastore/audit');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

// k6 durations: 90s, 2m, 1h30m, 1m30s.
function seconds(d) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(h|m|s)/g;
  let m;
  let matched = '';
  while ((m = re.exec(d))) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2]];
    matched += m[0];
  }
  if (!total || matched !== d) throw new Error(`--duration ${d}: expected k6 syntax such as 60s, 2m or 1h30m`);
  return total;
}

const RATE = Number(arg('rate', 100));
const DURATION = arg('duration', '60s');
const DURATION_S = seconds(DURATION);
const UP_S = Number(arg('up', 10));
const DOWN_S = Number(arg('down', 6));
const OUTAGES = arg('outages', 'down,lostreply').split(',');
for (const kind of OUTAGES) {
  if (kind !== 'down' && kind !== 'lostreply') throw new Error(`--outages ${kind}: each must be down or lostreply`);
}
// One temp dir for the outbox file, k6's ledger and summary; removed at the end.
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-soak-'));
const SUMMARY = arg('summary', path.join(TMP, 'summary.json'));
const LEDGER = path.join(TMP, 'ledger.jsonl');
const RUN_ID = crypto.randomBytes(4).toString('hex');
const DEADLINE_MS = 1500;
// Everything stops by itself: k6 gets its duration plus setup and a grace period.
const HARD_LIMIT_MS = (DURATION_S + 90) * 1000;
// The last outage ends half a cycle before k6 does, so the outbox has usually drained by
// then; this bounds the wait if it has not (outboxRate 100/s delivers a 6 s outage's
// writes in a few seconds).
const DRAIN_TIMEOUT_MS = 60000;

const API_ENV = apiEnv({ timeoutMs: 500, deadlineMs: DEADLINE_MS, tmp: TMP });

let store;
let api;
let k6;

async function cleanup() {
  if (k6 && k6.exitCode === null) k6.kill('SIGTERM');
  await Promise.all([api && stopProcess(api), store && store.close()]);
  fs.rmSync(TMP, { recursive: true, force: true });
}

stopOnSignals(cleanup);
process.on('exit', () => {
  if (k6 && k6.exitCode === null) k6.kill('SIGKILL');
  if (api && api.child.exitCode === null) api.child.kill('SIGKILL');
  if (store && store.running) process.kill(store.pid, 'SIGKILL');
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`[run-soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
let t0 = Date.now();

async function main() {
  store = await startDnastore();
  const port = await freePort();
  const transitions = { OPEN: 0, 'HALF-OPEN': 0, CLOSED: 0 };
  api = spawnNode({
    script: path.join(__dirname, '..', 'examples', 'sigil-api', 'sigil-api.cjs'),
    env: { ...API_ENV, PORT: String(port), DNASTORE_URL: store.url },
    isReady: (rec) => rec.msg === 'sigil-api listening',
    keepLines: 100,
    onLine: (rec) => {
      const m = /DNAStore circuit breaker (OPEN|HALF-OPEN|CLOSED)/.exec(rec.msg || '');
      if (m) transitions[m[1]]++;
    },
  });
  await api.ready;
  const base = `http://${HOST}:${port}`;
  t0 = Date.now();
  log(`DNAStore pid ${store.pid} ${store.url}; Sigil API pid ${api.pid} ${base}; k6 at ${RATE} req/s for ${DURATION}; DNAStore cycles ${UP_S}s up / ${DOWN_S}s out (${OUTAGES.join(', ')})`);

  const run = startK6({ base, rate: RATE, duration: DURATION, deadlineMs: DEADLINE_MS, runId: RUN_ID, summary: SUMMARY, ledger: LEDGER, log });
  k6 = run.proc;
  const k6Exit = run.exit;
  const hardLimit = setTimeout(() => {
    log('hard time limit reached: stopping k6');
    k6.kill('SIGTERM');
  }, HARD_LIMIT_MS);

  // Give k6 time to start and warm the cache, then cycle DNAStore while it runs; the last
  // outage ends (DNAStore back) before k6's run does, so the breaker's close is measured too.
  await sleep(3000);
  let outages = 0;
  const cyclesEnd = t0 + (DURATION_S - UP_S / 2) * 1000;
  while (!run.done() && Date.now() + (UP_S + DOWN_S) * 1000 < cyclesEnd) {
    await sleepOrDone(UP_S * 1000, () => run.done());
    if (run.done()) break;
    const kind = OUTAGES[outages % OUTAGES.length];
    outages++;
    if (kind === 'down') {
      await countReplays(); // the process's count goes with it
      await store.stop();
    } else {
      await store.setMode(kind);
    }
    log(`DNAStore ${kind === 'down' ? 'DOWN' : kind.toUpperCase()} (outage ${outages})`);
    await sleepOrDone(DOWN_S * 1000, () => run.done());
    if (kind === 'down') await store.start();
    else await store.setMode('up');
    log('DNAStore UP');
  }

  const code = await k6Exit;
  clearTimeout(hardLimit);
  const drained = await waitForDrain(base);
  let metricsText = '';
  try {
    metricsText = (await request('GET', `${base}/metrics`)).body;
  } catch {
    metricsText = '';
  }
  const trips = /^dnastore_circuit_trips_total\{[^}]*\} (\S+)/m.exec(metricsText)?.[1] ?? '?';
  const writes = await auditWrites(drained);
  report(code, { outages, trips, transitions });
  process.stdout.write(`${writes.lines.join('\n')}\n`);
  await cleanup();
  if (code !== 0) return code;
  return writes.ok ? 0 : 1;
}

// Polls the API's /readyz until its outbox is empty (bounded). DNAStore is up: every
// outage cycle ends with it started again.
async function waitForDrain(base) {
  const started = Date.now();
  let outbox;
  for (;;) {
    try {
      outbox = (await request('GET', `${base}/readyz`, { timeout: 2000 })).json.breakers.dnastore.outbox;
    } catch (err) {
      log(`readyz: ${err.message}`);
    }
    // null: the API runs without an outbox (DNASTORE_OUTBOX=off); nothing to wait for.
    if (outbox === null || (outbox && outbox.entries === 0)) return { outbox, afterMs: Date.now() - started, drained: true };
    if (Date.now() - started > DRAIN_TIMEOUT_MS) return { outbox, afterMs: Date.now() - started, drained: false };
    await sleep(250);
  }
}

// What k6 was told against what DNAStore holds.
async function auditWrites({ outbox, afterMs, drained }) {
  const lines = [];
  const o = outbox ?? {};
  if (outbox === null) lines.push('  outbox                none (DNASTORE_OUTBOX=off)');
  else lines.push(`  outbox                ${o.enqueued ?? '?'} writes queued (202), ${o.delivered ?? '?'} delivered, ${o.deadLettered ?? '?'} dead-lettered; ` +
    (drained ? `empty ${(afterMs / 1000).toFixed(1)} s after k6 ended` : `NOT drained after ${DRAIN_TIMEOUT_MS / 1000} s (${o.entries ?? '?'} still queued)`));
  let told;
  let held;
  let fake;
  try {
    told = parseLedger(fs.readFileSync(LEDGER, 'utf8'));
    held = (await store.sigils()).sigils;
    fake = await store.stats();
    replays += fake.replayed;
  } catch (err) {
    lines.push(`  audit                 FAIL: cannot read the ledger or DNAStore: ${err.message}`);
    return { ok: false, lines };
  }
  lines.push(`  DNAStore              ${held.length} sigils stored; ${replays} POSTs answered from an earlier result (a repeated Idempotency-Key)`);
  const a = audit({ told, stored: held });
  lines.push(formatAudit(a));
  if (a.writes === 0) lines.push('  audit                 FAIL: the ledger holds no writes');
  return { ok: a.ok && a.writes > 0 && drained, lines };
}

// POSTs the fake DNAStore answered from an earlier result (a repeated key), over restarts.
let replays = 0;
async function countReplays() {
  try {
    replays += (await store.stats()).replayed;
  } catch (err) {
    log(`DNAStore stats: ${err.message}`);
  }
}

async function sleepOrDone(ms, done) {
  const end = Date.now() + ms;
  while (Date.now() < end && !done()) await sleep(Math.min(200, end - Date.now()));
}

// A compact, honest line-up of the k6 summary: read failures (gated) and write failures (reported).
function report(code, { outages, trips, transitions }) {
  let s;
  try {
    s = JSON.parse(fs.readFileSync(SUMMARY, 'utf8')).metrics;
  } catch {
    log(`no k6 summary at ${SUMMARY}`);
    return;
  }
  const rate = (m) => (s[m] ? `${(100 * s[m].value).toFixed(2)} % of ${s[m].passes + s[m].fails}` : 'n/a');
  const count = (m) => (s[m] ? s[m].count : 0);
  const dur = (m) => (s[m] ? `p50 ${s[m]['p(50)'].toFixed(1)} ms, p99 ${s[m]['p(99)'].toFixed(1)} ms, max ${s[m].max.toFixed(1)} ms` : 'n/a');
  const lines = [
    `soak: ${RATE} req/s for ${DURATION}, ${outages} DNAStore outages (${DOWN_S}s each, by turns ${OUTAGES.join(', ')}), k6 exit ${code}`,
    `  requests              ${count('http_reqs')} (${s.http_reqs ? s.http_reqs.rate.toFixed(1) : '?'} req/s)`,
    `  failed (all requests) ${rate('http_req_failed')} (threshold < 1 %; a read passes on 200, a write on 201 or 202)`,
    `  reads failed          ${rate('read_failed')} (threshold < 1 %)`,
    `  reads from LKG cache  ${rate('read_served_from_cache')}`,
    `  writes failed         ${rate('write_failed')} (threshold < 1 %): ${count('writes_created_201')} got 201 (stored), ${count('writes_queued_202')} got 202 (queued); ` +
      `${count('writes_rejected_503')} got 503 + Retry-After (${count('writes_not_stored')} not stored, ${count('writes_outcome_unknown')} outcome unknown), ${count('writes_other_errors')} other errors`,
    `  read latency          ${dur('http_req_duration{kind:read}')} (deadline ${DEADLINE_MS} ms)`,
    `  write latency         ${dur('http_req_duration{kind:write}')}`,
    `  breaker               ${trips} trips; log lines OPEN ${transitions.OPEN}, HALF-OPEN ${transitions['HALF-OPEN']}, CLOSED ${transitions.CLOSED}`,
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    await cleanup();
    process.exitCode = 1;
  },
);
