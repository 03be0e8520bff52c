'use strict';

// One contender of bench/wrapped.js, in its own process (its CPU time and heap are its
// own). node bench/wrapped-child.js '<json>' with
//   { kind: 'closed' | 'open', impl: 'floor' | 'design' | 'opossum' | 'dnastore', warmupMs, durationMs, batch }
//   { kind: 'memory', impl, total, every }
// Prints one JSON line.

const path = require('node:path');
const { performance } = require('node:perf_hooks');

const noop = async () => 1;

// The design with nothing else: one native admission and one native outcome per
// call around the action's promise, and the Promise fire() returns (no events, no timeout,
// no cache). What any implementation of that design pays at least, measured here.
function design() {
  const native = require(path.join(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'), 'lib', 'native'));
  const circuit = new native.NativeCircuit('design-floor', {}, {});
  const { admit, record } = circuit.fastPath();
  const ok = native.CallResult.Success;
  const fail = native.CallResult.Failure;
  return {
    fire: () =>
      new Promise((resolve, reject) => {
        const slot = admit();
        noop().then(
          (v) => {
            record(slot, ok);
            resolve(v);
          },
          (e) => {
            record(slot, fail);
            reject(e);
          },
        );
      }),
    shutdown: () => circuit.shutdown(),
  };
}

function make(impl, open) {
  if (impl === 'floor') return { fire: noop, shutdown() {} };
  if (impl === 'design') return design();
  const Impl = impl === 'opossum' ? require('opossum') : require(process.env.DNASTORE_BENCH_MODULE || '..').CircuitBreaker;
  // opossum's defaults (10 s timeout, so a timer per call in opossum, the FIFO timer here).
  const b = new Impl(noop, { resetTimeout: 3_600_000, logger: false });
  if (open) {
    b.fallback(() => 'fallback');
    b.open();
  }
  return b;
}

function cpuUs() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

// `batch` calls in flight at a time, back to back, for `ms`.
async function run(b, ms, batch) {
  const end = performance.now() + ms;
  let calls = 0;
  const ps = new Array(batch);
  while (performance.now() < end) {
    for (let i = 0; i < batch; i++) ps[i] = b.fire();
    await Promise.all(ps);
    calls += batch;
  }
  return calls;
}

async function load(o) {
  const b = make(o.impl, o.kind === 'open');
  await run(b, o.warmupMs, o.batch);
  const cpu0 = cpuUs();
  const t0 = performance.now();
  const calls = await run(b, o.durationMs, o.batch);
  const wallUs = (performance.now() - t0) * 1000;
  const cpu = cpuUs() - cpu0;
  b.shutdown();
  return { impl: o.impl, kind: o.kind, calls, callsPerSec: calls / (wallUs / 1e6), usPerCall: wallUs / calls, cpuUsPerCall: cpu / calls };
}

async function memory(o) {
  const b = make(o.impl, false);
  const samples = [];
  for (let done = 0; done < o.total; ) {
    const ps = [];
    for (let i = 0; i < 100; i++) ps.push(b.fire());
    await Promise.all(ps);
    done += 100;
    if (done % o.every === 0) {
      global.gc();
      const m = process.memoryUsage();
      samples.push({ calls: done, rssMb: m.rss / 2 ** 20, heapMb: m.heapUsed / 2 ** 20 });
    }
  }
  b.shutdown();
  return { impl: o.impl, kind: 'memory', samples };
}

const o = JSON.parse(process.argv[2]);
(o.kind === 'memory' ? memory(o) : load(o)).then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);
