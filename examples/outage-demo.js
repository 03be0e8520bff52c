'use strict';

// The outage demo (`npm run demo`): starts the fake DNAStore and the Sigil API as child
// processes, sends steady traffic, stops DNAStore, starts it again, and prints one line
// per second, then a summary. Writes during the outage are queued in the API's durable
// outbox (202) and delivered after it; the demo then checks every write answered 201 or
// 202 is in DNAStore exactly once. Exit code 1 if the breaker never opened or never
// closed, the outbox did not drain, or a write was lost or stored twice.
//
//   node examples/outage-demo.js [--rate 50]

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { startDnastore, spawnNode, stopProcess, stopOnSignals, freePort, request, HOST } = require('./fake-dnastore/control');
const { audit } = require('./fake-dnastore/audit');

const RATE = Number(argValue('--rate') ?? 50);
const DOWN_AT_S = 8; // DNAStore process stopped
const UP_AT_S = 20; // and started again on the same port
const END_AT_S = 30; // traffic stops (later only if the breaker has not closed yet)
const HARD_END_S = 45;
const DRAIN_TIMEOUT_MS = 8000; // after traffic stops; the outbox normally drained long before
const CLIENT_TIMEOUT_MS = 5000;
const MAX_IN_FLIGHT = 500;
// The API's outbox file lives here for the demo only.
const OUTBOX_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-demo-outbox-'));

// Short settings so the whole story fits in half a minute; production uses the defaults.
const API_ENV = {
  DNASTORE_TIMEOUT_MS: '500',
  DNASTORE_DEADLINE_MS: '1500',
  DNASTORE_CIRCUIT_RESET_MS: '3000',
  DNASTORE_CIRCUIT_VOLUME_THRESHOLD: '10',
  DNASTORE_CIRCUIT_ROLLING_MS: '5000',
  DNASTORE_CIRCUIT_ROLLING_BUCKETS: '5',
  DNASTORE_OUTBOX_DIR: OUTBOX_DIR,
  LOG_LEVEL: 'info',
};

// The defaults, from .env.example (which a core test keeps equal to the option table).
function defaults() {
  const out = {};
  for (const line of fs.readFileSync(path.join(__dirname, '..', '.env.example'), 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

function printSettings() {
  const d = defaults();
  console.log('breaker settings of this demo (shortened so the story fits in half a minute; a service uses the defaults):');
  for (const [k, v] of Object.entries(API_ENV)) {
    if (!(k in d)) continue;
    console.log(`  ${k.padEnd(34)} ${v.padStart(6)}   default ${d[k]}`);
  }
  console.log('so "time to open" and "time to close" below follow these settings, not the defaults.\n');
}

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

let store;
let api;

// Every exit path (end, error, Ctrl-C, kill) stops both children.
async function cleanup() {
  await Promise.all([api && stopProcess(api), store && store.close()]);
  fs.rmSync(OUTBOX_DIR, { recursive: true, force: true });
}
stopOnSignals(cleanup, (sig) => process.stdout.write(`\n${sig}: stopping the demo's processes\n`));
// Last resort on an unexpected exit: the children also exit when our stdin pipe to them closes.
process.on('exit', () => {
  if (api && api.child.exitCode === null) api.child.kill('SIGKILL');
  if (store && store.running) process.kill(store.pid, 'SIGKILL');
  fs.rmSync(OUTBOX_DIR, { recursive: true, force: true });
});

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// One response -> ok (live 2xx), cache (LKG 200), queued (202: a write stored in the outbox),
// none (503 + Retry-After, nothing cached or a write refused), error (anything else: other
// statuses, resets, client timeouts).
function classify(status, headers) {
  const source = headers['x-fallback-source'];
  if (status === 202) return 'queued';
  if (status >= 200 && status < 300) return source ? (source === 'cache' ? 'cache' : 'function') : 'ok';
  if (status === 503 && headers['retry-after'] && source === 'none') return 'none';
  return 'error';
}

async function main() {
  store = await startDnastore();
  const apiPort = await freePort();
  const transitions = [];
  api = spawnNode({
    script: path.join(__dirname, 'sigil-api', 'sigil-api.cjs'),
    env: { ...API_ENV, PORT: String(apiPort), DNASTORE_URL: store.url },
    isReady: (rec) => rec.msg === 'sigil-api listening',
    keepLines: 2000,
    onLine: (rec) => {
      const m = /DNAStore circuit breaker (OPEN|HALF-OPEN|CLOSED)/.exec(rec.msg || '');
      if (m) transitions.push({ at: rec.time, to: m[1], reason: rec.reason });
      // The outbox's delivery runs (started / paused / drained), from the library's log.
      if (/^DNAStore outbox /.test(rec.msg || '')) transitions.push({ at: rec.time, to: `outbox ${rec.phase}`, reason: outboxNote(rec) });
    },
  });
  await api.ready;
  const base = `http://${HOST}:${apiPort}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });

  // Warm the last-known-good cache: a few sigils, each read once, and the list.
  const warm = [];
  for (let i = 0; i < 5; i++) {
    const r = await request('POST', `${base}/api/consciousness/sigils`, { body: { name: `warm-${i}`, glyph: '✶' }, agent });
    warm.push(r.json.id);
    await request('GET', `${base}/api/consciousness/sigils/${r.json.id}`, { agent });
  }
  await request('GET', `${base}/api/consciousness/sigils`, { agent });
  const recent = [];

  printSettings();
  console.log(`fake DNAStore pid ${store.pid} on ${store.url}; Sigil API pid ${api.pid} on ${base}; its outbox in ${OUTBOX_DIR}`);
  console.log(`${RATE} req/s (50% list, 30% get, 20% create); DNAStore goes down at ${DOWN_AT_S}s and comes back at ${UP_AT_S}s`);
  console.log('queued% = writes answered 202 (stored in the outbox); outbox = writes queued now; deliv = delivered from it so far\n');
  console.log('  time  dnastore  breaker    rps    ok%  cache%  queued%  503%  err%   p99ms  outbox  deliv  event');

  const t0 = Date.now();
  const all = [];
  const told = []; // { key, status } of every write, for the audit
  let bucket = [];
  let inFlight = 0;
  let seq = 0;
  let storeUp = true;
  let downAt = 0;
  let upAt = 0;

  const fire = () => {
    if (inFlight >= MAX_IN_FLIGHT) return bucket.push({ cls: 'error', ms: 0 });
    const n = seq++;
    const kind = n % 10 < 5 ? 'list' : n % 10 < 8 ? 'get' : 'create';
    let req;
    if (kind === 'list') req = request('GET', `${base}/api/consciousness/sigils`, { agent, timeout: CLIENT_TIMEOUT_MS });
    else if (kind === 'get') {
      const pool = n % 5 === 0 && recent.length ? recent : warm;
      req = request('GET', `${base}/api/consciousness/sigils/${pool[n % pool.length]}`, { agent, timeout: CLIENT_TIMEOUT_MS });
    } else {
      // A unique Idempotency-Key, also in the body (`ref`), so the audit can match the sigil.
      const key = `demo-${process.pid}-${n}`;
      req = request('POST', `${base}/api/consciousness/sigils`, { body: { name: `s-${n}`, ref: key }, headers: { 'idempotency-key': key }, agent, timeout: CLIENT_TIMEOUT_MS });
      req.then((r) => told.push({ key, status: r.status }), () => told.push({ key, status: 0 }));
    }
    const start = Date.now();
    inFlight++;
    req.then(
      (r) => {
        if (kind === 'create' && r.status === 201 && recent.length < 100) recent.push(r.json.id);
        return classify(r.status, r.headers);
      },
      () => 'error',
    ).then((cls) => {
      inFlight--;
      const rec = { cls, ms: Date.now() - start };
      bucket.push(rec);
      all.push(rec);
    });
  };

  let lastTransition = 0;
  const tick = async (second) => {
    const done = bucket;
    bucket = [];
    let state = '?';
    let outbox = {};
    try {
      const b = (await request('GET', `${base}/readyz`, { timeout: 900 })).json.breakers.dnastore;
      state = b.state;
      outbox = b.outbox ?? {};
    } catch {
      state = 'unreachable';
    }
    const count = (c) => done.filter((r) => r.cls === c).length;
    const pct = (c) => (done.length ? ((100 * count(c)) / done.length).toFixed(1) : '-');
    const p99 = percentile(done.map((r) => r.ms).sort((a, b) => a - b), 99);
    const events = transitions.slice(lastTransition).map((t) => `${t.to} (${t.reason})`);
    lastTransition = transitions.length;
    console.log(
      `${String(second).padStart(5)}s  ${(storeUp ? 'up' : 'DOWN').padEnd(8)}  ${state.padEnd(9)} ${String(done.length).padStart(4)}  ${pct('ok').padStart(5)}  ${pct('cache').padStart(6)}  ${pct('queued').padStart(7)}  ${pct('none').padStart(4)}  ${pct('error').padStart(4)}  ${String(p99).padStart(6)}  ${String(outbox.entries ?? '?').padStart(6)}  ${String(outbox.delivered ?? '?').padStart(5)}  ${events.join(', ')}`,
    );
  };

  const pacer = setInterval(fire, 1000 / RATE);
  let second = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, t0 + (second + 1) * 1000 - Date.now()));
    second++;
    if (second === DOWN_AT_S) {
      await store.stop();
      storeUp = false;
      downAt = Date.now();
    } else if (second === UP_AT_S) {
      await store.start();
      storeUp = true;
      upAt = Date.now();
    }
    await tick(second);
    const closedAgain = transitions.some((t) => t.to === 'CLOSED' && t.at >= upAt && upAt > 0);
    if ((second >= END_AT_S && closedAgain) || second >= HARD_END_S) break;
  }
  clearInterval(pacer);
  const drainEnd = Date.now() + CLIENT_TIMEOUT_MS + 500;
  while (inFlight > 0 && Date.now() < drainEnd) await new Promise((r) => setTimeout(r, 50));

  // Every queued write delivered (bounded wait), then what clients were told against what
  // DNAStore holds.
  const outboxEnd = Date.now() + DRAIN_TIMEOUT_MS;
  let outbox = {};
  for (;;) {
    outbox = (await request('GET', `${base}/readyz`)).json.breakers.dnastore.outbox ?? {};
    if (outbox.entries === 0 || Date.now() > outboxEnd) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const writes = audit({ told, stored: (await store.sigils()).sigils });

  const metricsText = (await request('GET', `${base}/metrics`)).body;
  const trips = Number(/^dnastore_circuit_trips_total\{[^}]*\} (\S+)/m.exec(metricsText)?.[1] ?? 0);
  const opened = transitions.find((t) => t.to === 'OPEN' && t.at >= downAt);
  const closed = transitions.find((t) => t.to === 'CLOSED' && t.at >= upAt);
  const tally = (c) => all.filter((r) => r.cls === c).length;
  const lat = all.map((r) => r.ms).sort((a, b) => a - b);

  console.log('\nsummary');
  console.log(`  requests           ${all.length} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`  served live        ${tally('ok')}`);
  console.log(`  served from cache  ${tally('cache')}  (200 + X-Fallback-Source: cache)`);
  console.log(`  queued (202)       ${tally('queued')}  (writes stored in the outbox during the outage)`);
  console.log(`  503 + Retry-After  ${tally('none')}  (nothing cached, or a write that was not stored)`);
  console.log(`  errors             ${tally('error')}  (any other status, reset or client timeout)`);
  console.log(`  latency            p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${lat[lat.length - 1] ?? 0} ms (deadline ${API_ENV.DNASTORE_DEADLINE_MS} ms)`);
  console.log(`  breaker trips      ${trips} (dnastore_circuit_trips_total)`);
  console.log(`  time to open       ${opened ? `${opened.at - downAt} ms after DNAStore stopped` : 'NEVER OPENED'}`);
  console.log(`  time to close      ${closed ? `${closed.at - upAt} ms after DNAStore came back` : 'NEVER CLOSED'}`);
  console.log(`  outbox             ${outbox.enqueued} writes queued, ${outbox.delivered} delivered after the outage, ${outbox.deadLettered} dead letters, ${outbox.entries} still queued`);
  console.log(`  write audit        ${writes.acknowledged} writes answered 201/202: ${writes.lost.length} lost, ${writes.duplicated.length} duplicated in DNAStore`);
  agent.destroy();
  await cleanup();
  if (!opened || !closed) {
    console.error('\nFAIL: the breaker did not both open during the outage and close after recovery');
    process.exitCode = 1;
  }
  if (outbox.entries !== 0 || !writes.ok || writes.queued === 0) {
    console.error(`\nFAIL: ${writes.queued === 0 ? 'no write was queued during the outage' : outbox.entries !== 0 ? 'the outbox did not drain' : 'a write answered 201/202 was lost or stored twice'}`);
    process.exitCode = 1;
  }
}

function outboxNote(rec) {
  if (rec.phase === 'started') return `${rec.queued} queued`;
  if (rec.phase === 'paused') return `${rec.queued} still queued`;
  return `${rec.delivered} delivered in ${Math.round(rec.afterMs)} ms`;
}

main().catch(async (err) => {
  console.error(err.stack || err);
  await cleanup();
  process.exitCode = 1;
});
