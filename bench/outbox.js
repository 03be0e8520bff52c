'use strict';

// npm run bench:outbox [-- --quick]   (a full `npm run bench` runs it too)
//
// The durable outbox, measured in children of their own (bench/outbox-child.js):
// - enqueue: 50 concurrent writers on an open circuit, every write synced to disk before it
//   is answered `queued`: writes/s, latency p50/p99/max, and syncs (fsync + fdatasync, counted
//   by `perf stat` on the child's syscalls) per write;
// - replay: writes queued while nginx is down, then delivered once it is up: writes/s;
// - live: POSTs with durable: true against durable: false on a healthy upstream, 50 in
//   flight: req/s and CPU per request, alternating in the same rounds (the store must not be
//   touched when a write is delivered live).
// Writes a block between markers in bench/results.md.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { startNginx, freePort } = require('./nginx');
const { ensureAddon } = require('./build');

const BEGIN = '<!-- outbox:begin (written by npm run bench:outbox; edit bench/outbox.js) -->';
const END = '<!-- outbox:end -->';
const log = (m) => process.stderr.write(`[bench:outbox] ${m}\n`);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

const PERF = spawnSync('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_fdatasync', '--', 'true'], { encoding: 'utf8' }).status === 0;

/** Runs a child; with `countSyncs`, under perf stat counting its fsync/fdatasync calls. */
function child(spec, { countSyncs = false, onReady } = {}) {
  const script = path.join(__dirname, 'outbox-child.js');
  const args = countSyncs && PERF
    ? ['stat', '-x,', '-e', 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync', '--', process.execPath, script, JSON.stringify(spec)]
    : [script, JSON.stringify(spec)];
  const cmd = countSyncs && PERF ? 'perf' : process.execPath;
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop();
      for (const l of lines) {
        const msg = JSON.parse(l);
        if (msg.ready) onReady?.(msg, () => c.stdin.write('go\n'));
        else c.result = msg;
      }
    });
    c.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 180_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || !c.result) return reject(new Error(`child exited ${code}: ${err.slice(-500)}`));
      let syncs;
      if (countSyncs && PERF) {
        syncs = err
          .split('\n')
          .filter((l) => /syscalls:sys_enter_f(data)?sync/.test(l))
          .reduce((n, l) => n + Number(l.split(',')[0]), 0);
      }
      resolve({ ...c.result, syncs });
    });
  });
}

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-bench-outbox-'));
}

async function run(opts = {}) {
  const quick = opts.quick ?? process.argv.includes('--quick');
  const rounds = quick ? 1 : 3;
  const durationMs = quick ? 2000 : 5000;
  const replayCount = quick ? 5000 : 20000;
  ensureAddon(log);
  const nginx = await startNginx();
  const dead = `http://127.0.0.1:${await freePort()}/write`;
  const r = { enqueue: [], replay: [], durable: [], plain: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      let dir = tempDir();
      const e = await child({ kind: 'enqueue', dir, deadUrl: dead, concurrency: 50, durationMs }, { countSyncs: true });
      fs.rmSync(dir, { recursive: true, force: true });
      r.enqueue.push(e);
      log(`round ${round + 1} enqueue: ${(e.writes / (e.elapsedMs / 1000)).toFixed(0)} writes/s, p99 ${(e.p99Us / 1000).toFixed(2)} ms, syncs/write ${e.syncs === undefined ? 'n/a' : (e.syncs / e.writes).toFixed(3)}`);

      for (const durable of round % 2 ? [false, true] : [true, false]) {
        dir = tempDir();
        const l = await child({ kind: 'live', dir, url: `${nginx.origin}/write`, durable, concurrency: 50, warmupMs: 1000, durationMs });
        fs.rmSync(dir, { recursive: true, force: true });
        (durable ? r.durable : r.plain).push(l);
        log(`round ${round + 1} live durable=${durable}: ${(l.requests / (l.elapsedMs / 1000)).toFixed(0)} req/s, ${(l.cpuUs / l.requests).toFixed(1)} us CPU/req, queued ${l.queued}`);
      }

      // Replay: queue while the port is closed, then start nginx on it and time the drain.
      dir = tempDir();
      const port = await freePort();
      let second;
      const p = await child(
        { kind: 'replay', dir, url: `http://127.0.0.1:${port}/write`, count: replayCount },
        {
          onReady: async (_msg, go) => {
            second = await startNginx(port);
            go();
          },
        },
      );
      await second?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      r.replay.push(p);
      log(`round ${round + 1} replay: ${p.delivered} delivered in ${p.elapsedMs.toFixed(0)} ms (${(p.delivered / (p.elapsedMs / 1000)).toFixed(0)} writes/s)`);
    }
  } finally {
    await nginx.stop();
  }
  const block = render(r, { rounds, durationMs, replayCount });
  if (!quick && !opts.noWrite) write(block);
  process.stdout.write(`${block}\n`);
  return r;
}

function render(r, { rounds, durationMs, replayCount }) {
  const rate = (x, n) => x[n] / (x.elapsedMs / 1000);
  const enq = r.enqueue.map((e) => rate(e, 'writes'));
  const p99 = r.enqueue.map((e) => e.p99Us / 1000);
  const syncs = r.enqueue.filter((e) => e.syncs !== undefined).map((e) => e.syncs / e.writes);
  const replay = r.replay.map((p) => p.delivered / (p.elapsedMs / 1000));
  const d = r.durable.map((x) => rate(x, 'requests'));
  const n = r.plain.map((x) => rate(x, 'requests'));
  const dCpu = r.durable.map((x) => x.cpuUs / x.requests);
  const nCpu = r.plain.map((x) => x.cpuUs / x.requests);
  const ratio = r.durable.map((x, i) => (x.cpuUs / x.requests) / (r.plain[i].cpuUs / r.plain[i].requests));
  const when = new Date().toISOString().replace('T', ' ').slice(0, 16);
  return [
    BEGIN,
    `### Durable outbox (${when} UTC, ${os.cpus().length} cores, ${rounds} round(s) of ${durationMs / 1000} s, \`npm run bench:outbox\`)`,
    '',
    '| measure | median | rounds | target (issue 13) |',
    '|---|---|---|---|',
    `| durable enqueue, 50 concurrent writers, synced before \`queued\` | ${median(enq).toFixed(0)} writes/s | ${range(enq.map((x) => x / 1000))} k | >= 10,000 writes/s |`,
    `| enqueue latency p99 | ${median(p99).toFixed(2)} ms | ${range(p99)} | < 5 ms |`,
    `| enqueue latency p50 / max | ${median(r.enqueue.map((e) => e.p50Us / 1000)).toFixed(2)} / ${median(r.enqueue.map((e) => e.maxUs / 1000)).toFixed(2)} ms | | |`,
    `| syncs (fsync + fdatasync) per write | ${syncs.length ? median(syncs).toFixed(3) : 'n/a (perf stat unavailable)'} | ${syncs.length ? range(syncs) : ''} | group commit: well below 1 |`,
    `| replay of ${replayCount} queued writes to nginx | ${median(replay).toFixed(0)} writes/s | ${range(replay.map((x) => x / 1000))} k | |`,
    `| live POST, durable: true (healthy upstream, 50 in flight) | ${median(d).toFixed(0)} req/s, ${median(dCpu).toFixed(1)} µs CPU/req | | |`,
    `| live POST, durable: false | ${median(n).toFixed(0)} req/s, ${median(nCpu).toFixed(1)} µs CPU/req | | |`,
    `| CPU per request, durable / not durable | ${median(ratio).toFixed(3)}x | ${range(ratio)} | <= 1.05x |`,
    '',
    `Writes queued during the live runs: ${r.durable.reduce((s, x) => s + x.queued, 0)} (the store is touched only when a write cannot be delivered).`,
    END,
  ].join('\n');
}

function write(block) {
  const file = path.join(__dirname, 'results.md');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length) : `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, next);
}

if (require.main === module) {
  run().catch((err) => {
    process.stderr.write(`bench:outbox failed: ${err.stack || err}\n`);
    process.exitCode = 1;
  });
}

module.exports = { run, BEGIN, END };
