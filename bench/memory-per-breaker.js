'use strict';

// node --expose-gc bench/memory-per-breaker.js [--breakers 1000]
//
// Resident memory per breaker (issue 25, item 6): creates `--breakers` breakers with default
// options (an https baseUrl), then shuts them all down, and prints KB per breaker of RSS
// growth: live, after shutdown() while the handles are still referenced, and after the
// handles are dropped and collected. Before each reading: full GCs, a turn of the event
// loop for finalizers, then `__collectMemory()` (mimalloc's mi_collect: mimalloc keeps freed
// pages for reuse, so without it freed memory stays resident). Where the memory goes is
// written down in crates/core/tests/memory_per_breaker.rs, which counts heap bytes exactly.
// Before the fix: ~300 KB per live breaker, none of it returned. One JSON line.
// `__test__/memory-per-breaker.test.js` runs it with bounds.

const path = require('node:path');

if (typeof global.gc !== 'function') {
  process.stderr.write('run with node --expose-gc\n');
  process.exit(2);
}

const root = process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..');
const native = require(path.join(root, 'binding.js'));
const { createBreaker } = require(root);

const i = process.argv.indexOf('--breakers');
const N = i > 0 ? Number(process.argv[i + 1]) : 1000;

const tick = () => new Promise((r) => setImmediate(r));
async function rssKb() {
  for (let k = 0; k < 4; k++) {
    global.gc();
    await tick();
  }
  if (typeof native.__collectMemory === 'function') native.__collectMemory();
  return process.memoryUsage().rss / 1024;
}

const make = (name) => createBreaker({ name, baseUrl: 'https://127.0.0.1:9', logger: false });

(async () => {
  // Process-wide costs once (the I/O runtime, the shared TLS verifier, metric families).
  const first = make(`mem-first-${process.pid}`);
  const base = await rssKb();
  let all = [];
  for (let k = 0; k < N; k++) all.push(make(`mem-${process.pid}-${k}`));
  const live = await rssKb();
  for (const b of all) b.shutdown();
  const held = await rssKb();
  all = null;
  const dropped = await rssKb();
  first.shutdown();
  const per = (x) => Number(((x - base) / N).toFixed(1));
  process.stdout.write(
    `${JSON.stringify({ breakers: N, baseMb: Number((base / 1024).toFixed(1)), liveKb: per(live), shutdownHandlesHeldKb: per(held), shutdownHandlesDroppedKb: per(dropped) })}\n`,
  );
})().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
});
