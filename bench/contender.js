'use strict';

// One contender, one measurement, in its own process: so its CPU time (process.cpuUsage(),
// every thread of this process, the I/O thread included) is its own, and no contender
// inherits another's JIT state, sockets or heap. The JS thread's own share of it is reported
// beside it (jsCpuUs; issue 18). Prints one JSON line on stdout.
//
// node bench/contender.js '<json>' where json is
//   { kind: 'load', name, mode: 'closed'|'open', target, concurrency, warmupMs, durationMs }
//   { kind: 'memory', name, target, concurrency, total, every }

const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const { create } = require('./contenders');

const WARMUP = 0;
const MEASURE = 1;
const STOP = 2;
// Open-circuit calls settle in microtasks only; yielding now and then lets timers (ours,
// and the breakers' own bucket rotation) run as they would in a live server.
const OPEN_YIELD_EVERY = 20;

function cpuUs() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * CPU time of the calling (JS) thread in µs: the first field of /proc/thread-self/schedstat
 * (ns on CPU), or null where it cannot be read (not Linux). Call it right after cpuUs(): the
 * kernel brings the running thread's figure up to date in getrusage(RUSAGE_SELF); read alone,
 * it lags by up to a scheduler tick (ms).
 */
function jsThreadCpuUs() {
  try {
    const ns = Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1000 : null;
  } catch {
    return null;
  }
}

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(sorted.length * q))) - 1];
}

async function load(spec, contender) {
  const open = spec.mode === 'open';
  const lat = open ? null : new Float64Array(4_000_000);
  let n = 0;
  let errors = 0;
  let phase = WARMUP;

  // A closed-circuit call must reach the upstream; an open one must resolve the fallback.
  const good = (r) => (open ? r != null && r.fallback === true : !(r != null && r.fallback === true));

  async function worker() {
    let i = 0;
    while (phase !== STOP) {
      const p = phase;
      const t0 = open ? 0 : performance.now();
      let ok;
      try {
        ok = good(await contender.call());
      } catch {
        ok = false;
      }
      if (p === MEASURE && phase === MEASURE) {
        if (!ok) errors++;
        else if (open) n++;
        else if (n < lat.length) lat[n++] = (performance.now() - t0) * 1000;
      }
      if (open && ++i % OPEN_YIELD_EVERY === 0) await new Promise(setImmediate);
    }
  }

  const workers = Array.from({ length: spec.concurrency }, worker);
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  const t0 = performance.now();
  const c0 = cpuUs();
  const j0 = jsThreadCpuUs();
  phase = MEASURE;
  await new Promise((r) => setTimeout(r, spec.durationMs));
  phase = STOP;
  const elapsedMs = performance.now() - t0;
  const cpu = cpuUs() - c0;
  const j1 = jsThreadCpuUs();
  await Promise.all(workers);
  const sorted = open ? [] : lat.subarray(0, n).sort();
  const jsCpuUs = j0 === null || j1 === null ? null : j1 - j0;
  return { requests: n, errors, elapsedMs, cpuUs: cpu, jsCpuUs, p50Us: percentile(sorted, 0.5), p99Us: percentile(sorted, 0.99) };
}

// Runs `total` requests at `concurrency`, sampling RSS and JS heap every `every` requests
// (after a full GC when --expose-gc is on, so samples compare live memory, not garbage).
async function memory(spec, contender) {
  const samples = [];
  let started = 0;
  let done = 0;
  let errors = 0;
  const sample = () => {
    if (typeof global.gc === 'function') global.gc();
    const m = process.memoryUsage();
    samples.push({ requests: done, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external });
  };
  sample();
  const t0 = performance.now();
  async function worker() {
    while (started < spec.total) {
      started++;
      try {
        const r = await contender.call();
        if (r != null && r.fallback === true) errors++;
      } catch {
        errors++;
      }
      done++;
      if (done % spec.every === 0) sample();
    }
  }
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  return { requests: done, errors, elapsedMs: performance.now() - t0, samples };
}

async function main() {
  const spec = JSON.parse(process.argv[2]);
  const contender = await create(spec.name, spec.target, spec.mode ?? 'closed');
  const result = spec.kind === 'memory' ? await memory(spec, contender) : await load(spec, contender);
  await contender.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`contender failed: ${err.stack || err}\n`);
  process.exitCode = 1;
});
