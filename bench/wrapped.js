'use strict';

// npm run bench:wrapped [-- --quick] [-- --rounds N --duration MS --requests N]
//
// The opossum-compatible CircuitBreaker against opossum 9, each contender in its own child
// process, in alternation over the rounds (medians reported):
// - closed circuit, a wrapped no-op async action: wall and CPU time per fire(), and the
//   overhead over calling the action directly (floor). Goal: at most 1/4 of opossum's.
// - open circuit with a fallback function: calls/s. Goal: at least 5x opossum's.
// - memory: 1M calls through a wrapped action (cache off), both contenders: RSS and heap
//   after a full GC every 100k; growth from half-way to the end should be ~0.
// Prints a Markdown table on stdout; progress on stderr.

const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..');

function parseArgs(argv) {
  const quick = argv.includes('--quick');
  const o = { rounds: quick ? 1 : 5, warmupMs: quick ? 300 : 1000, durationMs: quick ? 700 : 3000, batch: 50, total: quick ? 200_000 : 1_000_000 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rounds') o.rounds = Math.max(1, Number(argv[i + 1]));
    if (argv[i] === '--duration') o.durationMs = Number(argv[i + 1]);
    if (argv[i] === '--requests') o.total = Number(argv[i + 1]);
  }
  return o;
}

// The memory run pins V8's young generation (2 MB semi-spaces): left alone it grows in
// steps up to 3x16 MB as the allocation rate warms up, which shows as RSS growth that is
// V8 sizing its nursery, not a leak (the heap after a full GC stays flat either way).
function child(spec) {
  const flags = spec.kind === 'memory' ? ['--expose-gc', '--max-semi-space-size=2'] : ['--expose-gc'];
  const r = spawnSync(process.execPath, [...flags, path.join(__dirname, 'wrapped-child.js'), JSON.stringify(spec)], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`child ${JSON.stringify(spec)} failed: ${r.stderr || r.error}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const f = (x, d = 2) => x.toFixed(d);

function main() {
  const o = parseArgs(process.argv.slice(2));
  const runs = { closed: { floor: [], design: [], opossum: [], dnastore: [] }, open: { opossum: [], dnastore: [] } };
  for (let round = 1; round <= o.rounds; round++) {
    for (const kind of ['closed', 'open']) {
      for (const impl of Object.keys(runs[kind])) {
        process.stderr.write(`[bench:wrapped] round ${round}/${o.rounds} ${kind} ${impl}\n`);
        runs[kind][impl].push(child({ kind, impl, warmupMs: o.warmupMs, durationMs: o.durationMs, batch: o.batch }));
      }
    }
  }
  const m = (kind, impl, key) => median(runs[kind][impl].map((r) => r[key]));
  const floorUs = m('closed', 'floor', 'usPerCall');
  const floorCpu = m('closed', 'floor', 'cpuUsPerCall');
  const lines = [];
  lines.push(`Closed circuit, wrapped no-op async action, ${o.batch} calls in flight, median of ${o.rounds} rounds of ${o.durationMs} ms:`, '');
  lines.push('| contender | calls/s | µs per call | CPU µs per call | overhead µs (over floor) | overhead CPU µs |', '|---|---:|---:|---:|---:|---:|');
  const label = {
    floor: 'action called directly (floor)',
    design: 'the design alone: native admit + record around the promise (no events, timeout, cache)',
    opossum: 'opossum 9',
    dnastore: 'dnastore-breaker CircuitBreaker',
  };
  for (const impl of ['floor', 'design', 'opossum', 'dnastore']) {
    const us = m('closed', impl, 'usPerCall');
    const cpu = m('closed', impl, 'cpuUsPerCall');
    lines.push(`| ${label[impl]} | ${Math.round(m('closed', impl, 'callsPerSec'))} | ${f(us, 3)} | ${f(cpu, 3)} | ${impl === 'floor' ? '-' : f(us - floorUs, 3)} | ${impl === 'floor' ? '-' : f(cpu - floorCpu, 3)} |`);
  }
  const over = (impl) => m('closed', impl, 'cpuUsPerCall') - floorCpu;
  lines.push('', `Overhead ratio (CPU, dnastore / opossum): ${f(over('dnastore') / over('opossum'), 3)} (goal <= 0.25); the design alone: ${f(over('design') / over('opossum'), 3)}`, '');
  lines.push('Open circuit with a fallback function:', '', '| contender | calls/s | CPU µs per call |', '|---|---:|---:|');
  for (const impl of ['opossum', 'dnastore']) lines.push(`| ${impl === 'opossum' ? 'opossum 9' : 'dnastore-breaker CircuitBreaker'} | ${Math.round(m('open', impl, 'callsPerSec'))} | ${f(m('open', impl, 'cpuUsPerCall'), 3)} |`);
  lines.push('', `Open-circuit speed-up: ${f(m('open', 'dnastore', 'callsPerSec') / m('open', 'opossum', 'callsPerSec'), 1)}x (goal >= 5x)`, '');
  lines.push(`Memory, ${o.total} calls through a wrapped no-op action (cache off), after a full GC (young generation pinned at 2 MB):`, '');
  lines.push('| contender | calls | RSS MB | heap MB |', '|---|---:|---:|---:|');
  for (const impl of ['dnastore', 'opossum']) {
    process.stderr.write(`[bench:wrapped] memory ${impl}: ${o.total} calls\n`);
    const mem = child({ kind: 'memory', impl, total: o.total, every: o.total / 10 });
    for (const s of mem.samples) lines.push(`| ${impl === 'opossum' ? 'opossum 9' : 'dnastore-breaker CircuitBreaker'} | ${s.calls} | ${f(s.rssMb, 1)} | ${f(s.heapMb, 1)} |`);
    const half = mem.samples[Math.floor(mem.samples.length / 2) - 1];
    const last = mem.samples[mem.samples.length - 1];
    lines.push(`| ${impl}: growth from ${half.calls} to ${last.calls} calls | | ${f(last.rssMb - half.rssMb, 1)} | ${f(last.heapMb - half.heapMb, 1)} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
