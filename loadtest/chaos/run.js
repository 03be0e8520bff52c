'use strict';

// `npm run chaos`: a whole fleet on loopback, faults injected on a seeded schedule, and
// audited gates. No container runtime: every part is a real process started here by PID
// and stopped at the end (on success, failure, Ctrl-C or SIGTERM):
//
//   k6 (loadtest/soak.js, 100 req/s, 80 % reads, 20 % writes with Idempotency-Keys)
//     -> nginx (round robin, passive health checks; loadtest/chaos/lb.js)
//       -> N replicas of examples/sigil-api (loadtest/chaos/fleet.js), each with
//          last-known-good in Redis, the fleet outbox on Redis Streams (spilling to its
//          own file while Redis is down), and the fleet circuit (DNASTORE_FLEET_CIRCUIT=on)
//            -> the fault-injecting fake DNAStore (examples/fake-dnastore)
//            -> Redis: primary, replica, three Sentinels (redis+sentinel://; redis.js)
//   Prometheus scraping every replica with the project's alert rules, time-scaled
//   (loadtest/chaos/prometheus.js says why)
//
//   npm run chaos -- [--duration 180s] [--replicas 3] [--seed N] [--summary FILE]
//                    [--rate 100] [--window 8] [--faults a,b] [--alert-scale 30]
//                    [--fleet-circuit on|off] [--logs DIR]
//
// --fleet-circuit (or DNASTORE_FLEET_CIRCUIT=on|off): the shared circuit of issue 28, on
// by default and always set explicitly. Its gates (fleet-circuit.js: the replicas open
// together, one trial per round fleet-wide) are checked either way, so `off` is the A/B
// that shows them fail.
//
// The faults and the schedule: faults.js. The gates: gates.js. The picture: timeline.js,
// written beside the summary (FILE with .svg). Exit 0 only when every gate passed.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startK6, apiEnv } = require('../k6');
const { startDnastore } = require('../../examples/fake-dnastore/control');
const { audit, parseLedger, formatAudit } = require('../../examples/fake-dnastore/audit');
const { seededRandom } = require('../../examples/fake-dnastore/random');
const procs = require('./procs');
const { startRedisSet } = require('./redis');
const { startFleet } = require('./fleet');
const { startLb } = require('./lb');
const { scaledRulesFile, startPrometheus } = require('./prometheus');
const { schedule, inject, describe, NAMES, WINDOW_S } = require('./faults');
const { verdict, failedByFault } = require('./gates');
const { timelineData, buildSpec, renderSvg } = require('./timeline');
const { startAttemptSampler, perOutage, fleetGates, SPREAD_LIMIT_MS } = require('./fleet-circuit');

const argv = process.argv.slice(2);
function arg(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? fallback : argv[i + 1];
}

// k6 durations: 90s, 3m, 1h30m.
function seconds(d) {
  let total = 0;
  let matched = '';
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2]];
    matched += m[0];
  }
  if (!total || matched !== d) throw new Error(`--duration ${d}: expected k6 syntax such as 180s, 3m or 30m`);
  return total;
}

const DURATION = arg('duration', '180s');
const DURATION_S = seconds(DURATION);
const REPLICAS = Number(arg('replicas', 3));
const RATE = Number(arg('rate', 100));
const SEED = Number(arg('seed', Math.floor(Math.random() * 1e6)));
const WINDOW = Number(arg('window', WINDOW_S));
const ALERT_SCALE = Number(arg('alert-scale', 30));
const ONLY = arg('faults', NAMES.join(',')).split(',');
const RUN_ID = crypto.randomBytes(4).toString('hex');
const SUMMARY = path.resolve(arg('summary', path.join(os.tmpdir(), `dnastore-chaos-${RUN_ID}`, 'summary.json')));
const SVG = SUMMARY.replace(/(\.json)?$/, '.svg');
const LOGS = arg('logs', null);
const DEADLINE_MS = 1500;
const WARMUP_S = 15;
const TAIL_S = 32; // the circuits are checked 30 s after the last fault ends, while k6 still runs
const DRAIN_LIMIT_MS = 60000; // outboxLeft: what is still queued this long after k6 ended
if (!(REPLICAS >= 1 && REPLICAS <= 16)) throw new Error(`--replicas ${arg('replicas')}: 1 to 16`);
if (!(RATE > 0)) throw new Error(`--rate ${arg('rate')}: a positive number`);
if (!Number.isInteger(SEED)) throw new Error(`--seed ${arg('seed')}: an integer`);
if (!(WINDOW >= 2 && WINDOW <= 600)) throw new Error(`--window ${arg('window')}: seconds, 2 to 600`);

// The fleet circuit (issue 28): on unless asked otherwise (--fleet-circuit, or the library's
// own DNASTORE_FLEET_CIRCUIT in the environment), and always told to the replicas.
function fleetCircuit() {
  const asked = arg('fleet-circuit', process.env.DNASTORE_FLEET_CIRCUIT || 'on');
  if (asked !== 'on' && asked !== 'off') throw new Error(`--fleet-circuit ${asked}: on or off`);
  return asked === 'on';
}

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-chaos-run-'));
let t0 = Date.now();
const log = (msg) => process.stderr.write(`[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = procs.sleep;

const parts = {}; // store, redis, fleet, lb, prom, k6
let cleaning = null;

function cleanup() {
  cleaning ??= (async () => {
    if (LOGS && parts.lb) parts.lb.copyLogs(TMP);
    await Promise.allSettled([
      parts.k6 && procs.stop(parts.k6, 'SIGTERM', 5000),
      parts.fleet?.stop(), parts.lb?.stop(), parts.prom?.stop(), parts.redis?.stop(), parts.store?.close()]);
    if (LOGS) {
      fs.mkdirSync(LOGS, { recursive: true });
      fs.cpSync(TMP, LOGS, { recursive: true, filter: (src) => !src.includes('prom-data') });
    }
    fs.rmSync(TMP, { recursive: true, force: true });
    const left = procs.running();
    if (left.length) log(`still running after the stop, killed: ${left.join(', ')}`);
    procs.killAll();
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log(`${sig}: stopping everything`);
    cleanup().finally(() => process.exit(130));
  });
}
process.on('exit', () => procs.killAll());

async function main() {
  for (const tool of ['redis-server', 'redis-cli', 'nginx', 'prometheus', 'promtool', 'k6']) {
    if ((await procs.run('sh', ['-c', `command -v ${tool}`])).code !== 0) throw new Error(`${tool} is not on the PATH (bash scripts/tools.sh installs it)`);
  }
  const fleetOn = fleetCircuit();
  const plan = schedule({ seed: SEED, durationS: DURATION_S, warmupS: WARMUP_S, tailS: TAIL_S, windowS: WINDOW, only: ONLY });
  const random = seededRandom(SEED ^ 0x5eed);
  process.stdout.write(`chaos: ${REPLICAS} replicas, k6 ${RATE} req/s for ${DURATION}, seed ${SEED} (replay: --seed ${SEED}), fleet circuit ${fleetOn ? 'on' : 'off'}\n`);
  process.stdout.write(`fault schedule (seconds after k6 starts):\n${plan.map((f) => `  ${String(f.atS).padStart(6)} .. ${String(Math.round((f.atS + f.windowS) * 10) / 10).padEnd(6)} ${f.name.padEnd(24)} ${describe(f.name)}`).join('\n')}\n`);

  const rules = await scaledRulesFile({ dir: TMP, factor: ALERT_SCALE });
  process.stdout.write(`alert rules: monitoring/prometheus/alerts.yml with every duration divided by ${ALERT_SCALE} (${rules.changes.join(', ')}), promtool-checked\n`);

  parts.store = await startDnastore();
  log(`fake DNAStore pid ${parts.store.pid} ${parts.store.url}`);
  parts.redis = await startRedisSet({ dir: path.join(TMP, 'redis'), log });
  const env = {
    ...apiEnv({ timeoutMs: 500, deadlineMs: DEADLINE_MS, tmp: TMP }),
    DNASTORE_URL: parts.store.url,
    DNASTORE_LKG_REDIS_URL: parts.redis.url,
    DNASTORE_OUTBOX_REDIS_URL: parts.redis.url,
    // Entries in Redis (LKG and queued writes) are HMAC-signed, as in production.
    DNASTORE_LKG_SECRET: crypto.randomBytes(16).toString('hex'),
    // A killed replica's writes are taken over after 5 s (well above the 1.5 s deadline).
    DNASTORE_OUTBOX_CLAIM_IDLE_MS: '5000',
    // The fleet circuit, explicitly either way; it shares the LKG's Redis (redisUrl) and
    // signs its records with DNASTORE_LKG_SECRET.
    DNASTORE_FLEET_CIRCUIT: fleetOn ? 'on' : 'off',
    // One trial per half-open round (as docs/fleet.md measured): "trials per round" then
    // reads as how many replicas probed DNAStore, 1 with the fleet, N without it.
    DNASTORE_CIRCUIT_HALF_OPEN_CALLS: '1',
  };
  parts.fleet = await startFleet({ count: REPLICAS, env, dir: TMP, log, now: () => Date.now() });
  const fleet = parts.fleet;
  parts.lb = await startLb({ replicaPorts: fleet.ports, log });
  parts.prom = await startPrometheus({ dir: TMP, targets: fleet.ports, rulesFile: rules.file, log });
  fleet.probe((i, serving) => {
    log(`${fleet.replicas[i].name} ${serving ? 'ready: back in' : 'not ready: out of'} the load balancer`);
    parts.lb.setServing(i, serving);
  });

  // Go.
  const ledger = path.join(TMP, 'ledger.jsonl');
  const k6Summary = path.join(TMP, 'k6-summary.json');
  t0 = Date.now();
  const run = startK6({ base: parts.lb.url, rate: RATE, duration: DURATION, deadlineMs: DEADLINE_MS, runId: RUN_ID, summary: k6Summary, ledger, quiet: true, log });
  parts.k6 = run.proc;
  procs.track('k6', run.proc);
  const hardLimit = setTimeout(() => {
    log('hard time limit reached: stopping k6');
    procs.stop(run.proc, 'SIGTERM', 10000);
  }, (DURATION_S + 90) * 1000);
  const rss = fleet.sampleRss({ t0, warmupS: WARMUP_S, stopped: () => run.done() });
  // Each replica's upstream attempts, sampled during DNAStore outages (and 1 s after).
  let sampleUntil = 0;
  const attempts = startAttemptSampler({ replicas: fleet.replicas, active: () => Date.now() < sampleUntil });

  const windows = [];
  const notes = [];
  const faultErrors = [];
  let replays = 0;
  const ctx = {
    store: parts.store,
    redis: parts.redis,
    fleet,
    random,
    log,
    note: (fault, text) => {
      notes.push({ fault, text });
      log(`${fault}: ${text}`);
    },
    beforeStoreStop: async () => {
      try {
        replays += (await parts.store.stats()).replayed;
      } catch {
        // Already down: its count went with it.
      }
    },
  };
  let circuitsOpenAtEnd = null;
  let statesAtCheck = null;
  for (const f of plan) {
    if (!(await sleepUntil(t0 + f.atS * 1000, run.done))) break;
    const startMs = Date.now();
    if (f.outage) sampleUntil = startMs + (f.windowS + 2) * 1000;
    log(`FAULT ${f.name} (${f.windowS} s): ${describe(f.name)}`);
    let end;
    try {
      end = await inject(f.name, ctx);
    } catch (err) {
      faultErrors.push(`${f.name} start: ${err.message}`);
      log(`FAULT ${f.name} could not start: ${err.message}`);
    }
    await sleepUntil(startMs + f.windowS * 1000, run.done);
    if (end) {
      try {
        await end();
      } catch (err) {
        faultErrors.push(`${f.name} end: ${err.message}`);
        log(`FAULT ${f.name} could not end cleanly: ${err.message}`);
      }
    }
    windows.push({ name: f.name, outage: f.outage, startMs, endMs: Date.now() });
    if (f.outage) sampleUntil = Date.now() + 1000;
    log(`FAULT ${f.name} over`);
  }
  // 30 s after the last fault, with k6 still sending: every circuit must be closed again.
  const lastEnd = windows.length ? windows[windows.length - 1].endMs : t0;
  if (await sleepUntil(lastEnd + 30000, run.done)) {
    statesAtCheck = await Promise.all(fleet.replicas.map(async (r) => ({ replica: r.name, state: (await fleet.readyz(r, 3000).catch(() => null))?.breakers?.dnastore?.state ?? 'down' })));
    circuitsOpenAtEnd = statesAtCheck.filter((s) => s.state !== 'closed').length;
    log(`circuits 30 s after the last fault: ${statesAtCheck.map((s) => `${s.replica} ${s.state}`).join(', ')}`);
  } else {
    log('k6 ended before the circuits could be checked 30 s after the last fault');
  }

  const k6Code = await run.exit;
  clearTimeout(hardLimit);
  attempts.stop();
  if (cleaning) return 130; // Ctrl-C or SIGTERM: everything is being stopped
  const k6EndMs = Date.now();
  log(`k6 exited with ${k6Code}`);

  // outboxLeft: writes still queued (or being delivered) 60 s after k6 ended.
  const outboxLeft = await waitForDrain(fleet, k6EndMs + DRAIN_LIMIT_MS);
  const xlen = await parts.redis.xlen('dnastore:outbox:{dnastore}:q');
  log(`outbox: ${outboxLeft} writes left (Redis stream length ${xlen ?? '?'})`);
  const rssGrowth = await rss.finish();

  // The audit: what k6 was told against what DNAStore holds.
  let a = null;
  try {
    const told = parseLedger(fs.readFileSync(ledger, 'utf8'));
    const held = (await parts.store.sigils()).sigils;
    replays += (await parts.store.stats()).replayed;
    a = audit({ told, stored: held });
    process.stdout.write(`${formatAudit(a)}\n  DNAStore replays       ${replays} POSTs answered from an earlier result (a repeated Idempotency-Key)\n`);
  } catch (err) {
    log(`audit: cannot read the ledger or DNAStore: ${err.message}`);
  }

  // Alerts: let the last evaluations land, then read what fired.
  await sleep(3000);
  const runEndMs = Date.now();
  let firing = {};
  try {
    firing = await parts.prom.firing(t0, runEndMs);
  } catch (err) {
    log(`Prometheus: ${err.message}`);
  }
  let k6Metrics = {};
  try {
    k6Metrics = JSON.parse(fs.readFileSync(k6Summary, 'utf8')).metrics;
  } catch {
    log(`no k6 summary at ${k6Summary}`);
  }
  const records = parts.lb.records();
  const v = verdict({ replicas: REPLICAS, k6Metrics, audit: a, windows, firing, t0, runEndMs, circuitsOpenAtEnd, outboxLeft, rssGrowth, required: ONLY, failedByFault: failedByFault(records, windows) });
  const fleetRows = perOutage({ windows, transitions: fleet.transitions, samples: attempts.samples, replicas: fleet.replicas.map((r) => r.name), resetMs: Number(env.DNASTORE_CIRCUIT_RESET_MS) });
  v.summary.fleetCircuit = { on: fleetOn, halfOpenMaxCalls: 1, spreadLimitMs: SPREAD_LIMIT_MS, perOutage: fleetRows };
  v.gates.push(...fleetGates(fleetRows, REPLICAS));
  if (faultErrors.length) v.gates.push({ name: 'every fault started and ended cleanly', pass: false });
  v.passed = v.gates.every((g) => g.pass);
  const summary = {
    ...v.summary,
    passed: v.passed,
    gates: v.gates,
    run: {
      seed: SEED,
      durationS: DURATION_S,
      rate: RATE,
      fleetCircuit: fleetOn,
      alertScale: ALERT_SCALE,
      k6Exit: k6Code,
      schedule: windows.map((w) => ({ name: w.name, fromS: round1((w.startMs - t0) / 1000), toS: round1((w.endMs - t0) / 1000) })),
      notes,
      faultErrors,
      circuitsAt30s: statesAtCheck,
      readiness: fleet.events.map((e) => ({ atS: round1((e.t - t0) / 1000), replica: e.replica, what: e.what })),
      livenessRestarts: fleet.livenessRestarts(),
      dnastoreReplays: replays,
      redisStreamLeft: xlen,
      timeline: SVG,
    },
  };
  fs.mkdirSync(path.dirname(SUMMARY), { recursive: true });
  fs.writeFileSync(SUMMARY, `${JSON.stringify(summary, null, 2)}\n`);

  // The picture, from the load balancer's log, the readiness samples and the alerts.
  try {
    await drawTimeline({ fleet, records, windows, firing, durationS: Math.ceil((runEndMs - t0) / 1000) });
  } catch (err) {
    log(`timeline: ${err.stack || err.message}`);
  }

  process.stdout.write(`\n${resultLines(summary).join('\n')}\n`);
  process.stdout.write(`\n${v.gates.map((g) => `  ${g.pass ? 'PASS' : 'FAIL'}  ${g.name}`).join('\n')}\n`);
  process.stdout.write(`summary ${SUMMARY}\ntimeline ${SVG}\n`);
  await cleanup();
  return v.passed ? 0 : 1;
}

const round1 = (x) => Math.round(x * 10) / 10;
const pct = (x) => (x === null ? '?' : `${(100 * x).toFixed(2)} %`);

// The summary in a few lines for the log.
function resultLines(s) {
  const w = s.writes;
  const outages = s.alerts.dnastoreDown.perOutage.map((o) => `${o.fault} ${o.fired ? `fired +${o.firedAfterS.toFixed(1)} s` : 'NOT fired'}, ${o.resolved ? `resolved +${o.resolvedAfterEndS.toFixed(1)} s after` : 'NOT resolved'}`);
  return [
    `chaos result: ${s.requests} requests, ${pct(s.httpReqFailedRate)} failed, reads ${pct(s.readsFailedRate)} failed`,
    `  writes                ${w.acked} acked (${w.created201} 201, ${w.queued202} 202), ${w.notAcked} not (503: refused, never lost); lost ${w.lost}, duplicated ${w.duplicated}`,
    `  failed, by fault      ${Object.entries(s.failedByFault || {}).map(([f, n]) => `${f} ${n}`).join(', ') || 'none'} (each fault's window and the time until the next one)`,
    `  after the faults      ${s.circuitsOpenAtEnd ?? '?'} circuits open 30 s after the last one; ${s.outboxLeft ?? '?'} writes left in the outbox`,
    `  ${s.alerts.dnastoreDown.alert.padEnd(21)} ${outages.join('; ')}`,
    `  alerts fired          ${Object.entries(s.alerts.fired).map(([n, a]) => `${n} x${a.fired}${a.resolved ? '' : ' (still firing)'}`).join(', ') || 'none'}`,
    `  RSS growth            ${Object.entries(s.rssGrowth).map(([r, g]) => `${r} ${g.growthMiB ?? '?'} MiB over ${g.overS ?? '?'} s${g.restarts ? ` (since its restart)` : ''}`).join(', ')}`,
    `  liveness restarts     ${s.run.livenessRestarts}`,
    `  fleet circuit ${s.fleetCircuit.on ? 'on ' : 'off'}     ${s.fleetCircuit.perOutage.map((o) => `${o.fault}: ${o.opened} opened within ${o.spreadMs ?? '?'} ms, ${o.trials ?? '?'} trials in ${o.rounds ?? '?'} rounds (without the fleet up to ${o.withoutFleet ?? '?'})${o.gated ? '' : ' [Redis down too: not gated]'}`).join('; ')}`,
  ];
}

/** Sleeps until `atMs`; false when `stop()` became true first (checked every 200 ms). */
async function sleepUntil(atMs, stop) {
  while (Date.now() < atMs) {
    if (stop()) return false;
    await sleep(Math.min(200, atMs - Date.now()));
  }
  return !stop();
}

// The shared queue is empty once no replica reports an entry or a write in flight, and no
// replica still holds writes it spilled while Redis was down (per replica: summed).
async function waitForDrain(fleet, deadlineMs) {
  let left = null;
  for (;;) {
    const seen = await Promise.all(fleet.replicas.map((r) => fleet.readyz(r, 2000).catch(() => null)));
    const outboxes = seen.map((b) => b?.breakers?.dnastore?.outbox).filter(Boolean);
    if (outboxes.length) left = Math.max(...outboxes.map((o) => o.entries + (o.inFlight || 0))) + outboxes.reduce((n, o) => n + (o.spilled || 0), 0);
    if (left === 0 || Date.now() > deadlineMs) return left;
    await sleep(500);
  }
}

async function drawTimeline({ fleet, records, windows, firing, durationS }) {
  const data = timelineData({ t0, replicas: fleet.replicas, samples: fleet.samples, records, windows, firing });
  const spec = buildSpec({ title: `npm run chaos: ${fleet.replicas.length} replicas, ${RATE} req/s, ${DURATION}, seed ${SEED}`, durationS, ...data });
  // With --logs, the vega-lite specification too (its data included): it renders again.
  if (LOGS) fs.writeFileSync(path.join(TMP, 'timeline.vl.json'), JSON.stringify(spec));
  await renderSvg(spec, SVG);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err) => {
    log(`failed: ${err.stack || err.message}`);
    await cleanup();
    process.exitCode = 1;
  },
);
