'use strict';

// npm run bench [-- --quick] [-- --rounds N --duration MS --warmup MS --requests N --no-memory --only a,b --baseline DIR]
//
// One run, one machine state: starts nginx, builds what is under test, then measures every
// contender in alternation (each in its own child process) and writes bench/results.md.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const { startNginx } = require('./nginx');
const { buildBareReqwest, ensureAddon, ROOT } = require('./build');
const { derive } = require('./stats');
const { render } = require('./report');
const { updateReadme } = require('./readme');

const CLOSED = ['opossum+node-fetch', 'opossum+fetch', 'opossum+undici', 'cockatiel+undici', 'dnastore-breaker', 'bare reqwest (2 workers)', 'bare reqwest (1 thread)'];
// Coalescing changes how many upstream requests are made, so it is an extra row where it can matter.
const CLOSED_EXTRA_AT_50 = ['dnastore-breaker (coalesce)', 'dnastore-breaker (AbortSignal)', 'dnastore-breaker (no otel api)', 'dnastore-breaker (otel provider)'];
// The bulkhead's cost (issue 15: within 3 % of dnastore-breaker at both concurrencies).
const CLOSED_EXTRA_BOTH = ['dnastore-breaker (bulkhead 64)'];
const OPEN = { 'opossum (open)': 'opossum+undici', 'dnastore-breaker (open)': 'dnastore-breaker', 'harness floor (settled promise)': 'floor' };
const BARE = { 'bare reqwest (2 workers)': 2, 'bare reqwest (1 thread)': 1 };
// A child that has not answered by then is stuck: its result is dropped, the run goes on.
const CHILD_GRACE_MS = 30_000;

function parseArgs(argv) {
  const quick = argv.includes('--quick');
  const o = {
    quick,
    rounds: quick ? 1 : 3,
    warmupMs: quick ? 500 : 1000,
    durationMs: quick ? 2000 : 4000,
    openDurationMs: quick ? 1000 : 3000,
    memRequests: quick ? 100_000 : 1_000_000,
    memory: !argv.includes('--no-memory'),
    only: null,
    baseline: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--rounds') o.rounds = Math.max(1, Number(v));
    if (argv[i] === '--duration') o.durationMs = Number(v);
    if (argv[i] === '--warmup') o.warmupMs = Number(v);
    if (argv[i] === '--requests') o.memRequests = Number(v);
    if (argv[i] === '--only') o.only = v.split(',');
    if (argv[i] === '--baseline') o.baseline = path.resolve(v);
  }
  return o;
}

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Runs one child to completion; resolves to its JSON line, or null (logged) if it failed. */
function runChild(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`exit ${code ?? signal}`);
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch (e) {
        log(`${path.basename(args[0] ?? cmd)} failed (${e.message}): ${err.trim().slice(-2000)}`);
        resolve(null);
      }
    });
  });
}

function measure(name, spec, ctx) {
  const timeout = spec.warmupMs + spec.durationMs + CHILD_GRACE_MS;
  if (BARE[name]) {
    const args = ['--url', ctx.target.url, '--concurrency', String(spec.concurrency), '--threads', String(BARE[name])];
    args.push('--warmup-ms', String(spec.warmupMs), '--duration-ms', String(spec.durationMs));
    return runChild(ctx.bareReqwest, args, timeout);
  }
  return runChild(process.execPath, [path.join(__dirname, 'contender.js'), JSON.stringify({ kind: 'load', name, target: ctx.target, ...spec })], timeout);
}

function rotate(list, by) {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

function describe(name, d) {
  if (!d) return `${name}: failed`;
  const lat = d.p50Us ? `, p50 ${d.p50Us.toFixed(0)} us, p99 ${d.p99Us.toFixed(0)} us` : '';
  const js = Number.isFinite(d.jsCpuPerReqUs) ? ` (JS thread ${d.jsCpuPerReqUs.toFixed(2)})` : '';
  return `${name}: ${d.rps.toFixed(0)}/s, ${d.cpuPerReqUs.toFixed(2)} us CPU/req${js}${lat}${d.errors ? `, ${d.errors} errors` : ''}`;
}

async function runRounds(opts, ctx) {
  const pick = (names) => (opts.only ? names.filter((n) => opts.only.some((o) => n.startsWith(o))) : names);
  // --baseline DIR: the same dnastore-breaker contender from another build, in the same rounds.
  const ab = opts.baseline ? ['dnastore-breaker (baseline)'] : [];
  const ab50 = opts.baseline ? [...ab, ...pick(['dnastore-breaker (AbortSignal, baseline)'])] : [];
  const closed = { 50: {}, 1: {} };
  for (const [c, extra, base] of [[50, [...CLOSED_EXTRA_AT_50, ...CLOSED_EXTRA_BOTH], ab50], [1, CLOSED_EXTRA_BOTH, ab]]) {
    for (const n of [...pick([...CLOSED, ...extra]), ...base]) closed[c][n] = [];
  }
  const openNames = { ...OPEN, ...(opts.baseline ? { 'dnastore-breaker (open, baseline)': 'dnastore-breaker (baseline)' } : {}) };
  const open = {};
  for (const n of pick(Object.keys(OPEN))) open[n] = [];
  if (opts.baseline) open['dnastore-breaker (open, baseline)'] = [];

  for (let round = 0; round < opts.rounds; round++) {
    for (const c of [50, 1]) {
      for (const name of rotate(Object.keys(closed[c]), round)) {
        const spec = { mode: 'closed', concurrency: c, warmupMs: opts.warmupMs, durationMs: opts.durationMs };
        const r = await measure(name, spec, ctx);
        closed[c][name][round] = r && derive(r);
        log(`round ${round + 1}/${opts.rounds} closed c=${c} ${describe(name, closed[c][name][round])}`);
      }
    }
    for (const name of rotate(Object.keys(open), round)) {
      const spec = { mode: 'open', concurrency: 50, warmupMs: 500, durationMs: opts.openDurationMs };
      const r = await measure(openNames[name], spec, ctx);
      open[name][round] = r && derive(r);
      log(`round ${round + 1}/${opts.rounds} open ${describe(name, open[name][round])}`);
    }
  }
  return { closed, open };
}

async function runMemory(opts, ctx) {
  const every = Math.max(1, Math.round(opts.memRequests / 10));
  const spec = { kind: 'memory', name: 'dnastore-breaker', target: ctx.target, concurrency: 50, total: opts.memRequests, every };
  log(`memory: dnastore-breaker through ${opts.memRequests} requests, sampling every ${every}`);
  // V8's young generation is pinned (2 MB semi-spaces, as in bench/wrapped.js): left alone it
  // grows in steps up to 3x16 MB as the allocation rate warms up, which showed as 8 MB of
  // "RSS growth" in the last sample with the live heap flat (2026-11-29 results). Pinned, RSS
  // growth means memory the process keeps, which is what the target is about.
  const r = await runChild(process.execPath, ['--expose-gc', '--max-semi-space-size=2', path.join(__dirname, 'contender.js'), JSON.stringify(spec)], opts.memRequests * 2 + 60_000);
  if (r) for (const s of r.samples) log(`  ${s.requests}: rss ${(s.rss / 1048576).toFixed(1)} MB, heap ${(s.heapUsed / 1048576).toFixed(2)} MB`);
  return r;
}

function machine() {
  const cpus = os.cpus();
  let rustc = 'rustc ?';
  try {
    rustc = execFileSync('rustc', ['--version']).toString().trim();
  } catch {
    /* not on PATH: the table says so */
  }
  // nginx -v prints its version on stderr.
  const v = spawnSync('/usr/sbin/nginx', ['-v'], { encoding: 'utf8' });
  const nginx = /nginx\/(\S+)/.exec(`${v.stdout ?? ''}${v.stderr ?? ''}`)?.[1] ?? '?';
  return {
    nproc: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    memGb: (os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    rustc,
    nginx,
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  // DNASTORE_BENCH_MODULE: measure another build of the package (see README); leave the repo's alone.
  if (process.env.DNASTORE_BENCH_MODULE) log(`dnastore-breaker from ${process.env.DNASTORE_BENCH_MODULE}`);
  else ensureAddon(log);
  if (opts.baseline) {
    // Inherited by the contender children.
    process.env.DNASTORE_BENCH_BASELINE = opts.baseline;
    log(`dnastore-breaker (baseline) from ${opts.baseline}`);
  }
  const bareReqwest = buildBareReqwest(log);
  const nginx = await startNginx();
  log(`nginx pid ${nginx.pid} serving ${nginx.url}`);
  // Stop what we started if the run is interrupted.
  const onSignal = (sig) => {
    nginx.stop().finally(() => process.kill(process.pid, sig));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let results;
  try {
    const ctx = { target: { url: nginx.url, origin: nginx.origin, path: nginx.path }, bareReqwest };
    const { closed, open } = await runRounds(opts, ctx);
    const memory = opts.memory ? await runMemory(opts, ctx) : null;
    const args = process.argv.slice(2).join(' ');
    results = {
      meta: {
        date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        ...machine(),
        command: `npm run bench${args ? ` -- ${args}` : ''}`,
        rounds: opts.rounds,
        warmupMs: opts.warmupMs,
        durationMs: opts.durationMs,
        bodyBytes: nginx.bytes,
      },
      closed,
      open,
      memory,
    };
  } finally {
    await nginx.stop();
    log('nginx stopped');
  }
  const { markdown, missed } = render(results);
  // A smoke run (--quick), a partial one (--only) or an A/B run (--baseline) must not replace
  // the committed results.
  const partial = opts.quick || opts.only || opts.baseline;
  // Per-run names in the temp dir: several people may run the bench on one machine.
  const tmp = path.join(os.tmpdir(), `dnastore-bench-${process.pid}`);
  const file = partial ? `${tmp}.md` : path.join(__dirname, 'results.md');
  const raw = `${tmp}.json`;
  fs.writeFileSync(file, `${markdown}\n`);
  fs.writeFileSync(raw, `${JSON.stringify(results, null, 1)}\n`);
  // docs/performance.md quotes the latest full run (bench/readme.js).
  if (!partial && !updateReadme(results)) log('docs/performance.md has no bench markers: its numbers were not updated');
  process.stdout.write(`${markdown}\n`);
  // The outbox's own measurements, in a block of results.md of their own (bench/outbox.js).
  if (!partial) await require('./outbox').run({ quick: false });
  log(`wrote ${file} (raw rounds: ${raw}) in ${((Date.now() - started) / 1000).toFixed(0)} s; ${missed} target(s) missed`);
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exitCode = 1;
});
