'use strict';

// node bench/syscalls.js [contender] [module dir]
//
// System calls per request of one contender at concurrency 1 (bench/contender.js against the
// bench's nginx), counted by the kernel's syscall tracepoints over 3 s of its measured window
// with `perf stat` (needs perf, and root or perf_event_paranoid <= 1). Each call on this VM
// costs ~0.5-1 µs of the ~100 µs a request takes, and the count is exact where CPU figures
// swing by ±20 % between runs: a change to how a lone call is driven (src/bridge/local) shows
// here first. Defaults: dnastore-breaker, this checkout (DNASTORE_BENCH_MODULE for another).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { startNginx } = require('./nginx');

const CALLS = ['write', 'writev', 'read', 'recvfrom', 'sendto', 'poll', 'epoll_wait', 'epoll_pwait', 'futex'];

async function main() {
  const name = process.argv[2] || 'dnastore-breaker';
  const moduleDir = process.argv[3];
  const ng = await startNginx();
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-syscalls-')), 'stat.csv');
  let child;
  try {
    const spec = { kind: 'load', name, mode: 'closed', target: { url: ng.url, origin: ng.origin, path: ng.path }, concurrency: 1, warmupMs: 1500, durationMs: 5000 };
    const env = moduleDir ? { ...process.env, DNASTORE_BENCH_MODULE: path.resolve(moduleDir) } : process.env;
    child = spawn(process.execPath, [path.join(__dirname, 'contender.js'), JSON.stringify(spec)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise((r) => child.on('exit', r));
    // Inside the measured window (warm-up 1.5 s, then 5 s).
    await new Promise((r) => setTimeout(r, 2000));
    const events = CALLS.map((c) => `syscalls:sys_enter_${c}`).join(',');
    execFileSync('perf', ['stat', '-o', out, '-x', ',', '-e', events, '-p', String(child.pid), '--', 'sleep', '3'], { stdio: 'ignore', timeout: 30_000 });
    await exited;
    const res = JSON.parse(stdout.trim().split('\n').pop());
    const rps = res.requests / (res.elapsedMs / 1000);
    const lines = [`${name}${moduleDir ? ` (${moduleDir})` : ''}: ${Math.round(rps)} req/s, ${(res.cpuUs / res.requests).toFixed(1)} µs CPU per request`, '', '| system call | per request |', '|---|---:|'];
    let total = 0;
    for (const l of fs.readFileSync(out, 'utf8').split('\n')) {
      const f = l.split(',');
      if (l.startsWith('#') || f.length < 3 || !f[2].startsWith('syscalls:')) continue;
      const per = Number(f[0]) / (rps * 3);
      total += per;
      if (per >= 0.005) lines.push(`| ${f[2].replace('syscalls:sys_enter_', '')} | ${per.toFixed(2)} |`);
    }
    lines.push(`| **total** | **${total.toFixed(2)}** |`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGTERM');
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
    await ng.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exitCode = 1;
});
