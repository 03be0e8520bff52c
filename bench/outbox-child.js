'use strict';

// One outbox measurement in its own process (its CPU time is its own). Prints one JSON line.
// node bench/outbox-child.js '<json>' where json is
//   { kind: 'enqueue', dir, deadUrl, concurrency, durationMs }      open circuit: every write is queued
//   { kind: 'replay', dir, url, count }                              queue `count` writes to `url` (down), then
//                                                                    read a line on stdin (nginx is up) and drain
//   { kind: 'live', dir, url, durable, concurrency, warmupMs, durationMs }  healthy upstream

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');

const { createBreaker } = require(process.env.DNASTORE_BENCH_MODULE || 'dnastore-breaker');

const BODY = JSON.stringify({ sigil: { name: 'glyph', owner: 'tenant-42', glyphs: ['a', 'b', 'c'], note: 'x'.repeat(200) } });
const HEADERS = { 'content-type': 'application/json' };

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(sorted.length * q))) - 1];
}

function breaker(spec, extra) {
  return createBreaker({ name: 'bench-outbox', logger: false, outbox: 'on', outboxDir: spec.dir, maxAttempts: 1, ...extra });
}

async function enqueue(spec) {
  const b = breaker(spec, { maxFailures: 1, resetTimeout: 3_600_000, outboxMaxEntries: 10_000_000, outboxMaxBytes: 64 * 1024 ** 3 });
  await b.fire(spec.deadUrl, { method: 'POST', headers: HEADERS, body: BODY, durable: true });
  if (b.state !== 'open') throw new Error(`the circuit did not open (${b.state})`);
  const lat = new Float64Array(8_000_000);
  let n = 0;
  let bad = 0;
  let stop = false;
  const t0 = performance.now();
  const c0 = cpuUs();
  const worker = async () => {
    while (!stop) {
      const s = performance.now();
      const r = await b.fire(spec.deadUrl, { method: 'POST', headers: HEADERS, body: BODY, durable: true });
      if (r.queued !== true) bad++;
      else if (n < lat.length) lat[n++] = (performance.now() - s) * 1000;
    }
  };
  const workers = Array.from({ length: spec.concurrency }, worker);
  await new Promise((r) => setTimeout(r, spec.durationMs));
  stop = true;
  await Promise.all(workers);
  const elapsedMs = performance.now() - t0;
  const cpu = cpuUs() - c0;
  const sorted = lat.subarray(0, n).sort();
  b.shutdown();
  return { writes: n, bad, elapsedMs, cpuUs: cpu, p50Us: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99), maxUs: sorted[n - 1] ?? 0 };
}

async function replay(spec) {
  const b = breaker(spec, { maxFailures: 1, resetTimeout: 50, halfOpenMaxCalls: 1, outboxRate: 100_000, outboxConcurrency: 64, outboxMaxEntries: 10_000_000 });
  let queued = 0;
  let next = 0;
  const worker = async () => {
    while (next++ < spec.count) {
      const r = await b.fire(spec.url, { method: 'POST', headers: HEADERS, body: BODY, durable: true });
      if (r.queued === true) queued++;
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  process.stdout.write(`${JSON.stringify({ ready: true, queued })}\n`);
  await new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.once('line', () => {
      rl.close();
      process.stdin.destroy(); // nothing else to read: let the process exit when done
      resolve();
    });
  });
  const t0 = performance.now();
  const c0 = cpuUs();
  while (b.outbox.stats().entries > 0) await new Promise((r) => setTimeout(r, 2));
  const elapsedMs = performance.now() - t0;
  const s = b.outbox.stats();
  b.shutdown();
  return { queued, delivered: s.delivered, deadLettered: s.deadLettered, elapsedMs, cpuUs: cpuUs() - c0 };
}

async function live(spec) {
  const b = breaker(spec, { coalesce: false });
  let n = 0;
  let bad = 0;
  let phase = 0;
  const worker = async () => {
    while (phase < 2) {
      const p = phase;
      const r = await b.fire(spec.url, { method: 'POST', headers: HEADERS, body: BODY, durable: spec.durable });
      if (p === 1 && phase === 1) {
        if (r && r.ok === true) n++;
        else bad++;
      }
    }
  };
  const workers = Array.from({ length: spec.concurrency }, worker);
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  phase = 1;
  const t0 = performance.now();
  const c0 = cpuUs();
  await new Promise((r) => setTimeout(r, spec.durationMs));
  phase = 2;
  const elapsedMs = performance.now() - t0;
  const cpu = cpuUs() - c0;
  await Promise.all(workers);
  const entries = b.outbox.stats().enqueued;
  b.shutdown();
  return { requests: n, bad, elapsedMs, cpuUs: cpu, queued: entries };
}

const KINDS = { enqueue, replay, live };

KINDS[JSON.parse(process.argv[2]).kind](JSON.parse(process.argv[2]))
  .then((r) => process.stdout.write(`${JSON.stringify(r)}\n`))
  .catch((err) => {
    process.stderr.write(`outbox bench child failed: ${err.stack || err}\n`);
    process.exitCode = 1;
  });
