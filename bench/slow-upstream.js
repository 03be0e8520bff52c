'use strict';

// node bench/slow-upstream.js [-- --rounds N]
//
// Lone calls (one in flight at a time) to an upstream that answers after a delay, with
// lone calls on the JS thread (the default) and with `inlineIo: false`: client CPU per call,
// and how many calls ran on the JS thread. The bench's nginx answers in ~0.1 ms; services
// talk to stores that take milliseconds, where the JS thread's runtime needs its timer tick
// for as long as a call is in flight (src/bridge/local) and a breaker whose calls are slow sends
// them to the I/O thread instead (LoneRoute in crates/core/src/own_runtime.rs).
// The upstream is a Node server in this process; each client runs in its own process, the
// two modes alternating, and the median of the rounds is printed as a Markdown table.

const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');

const DELAYS_MS = [0, 10, 40];

if (process.argv[2] === 'child') {
  const [port, inline, n] = process.argv.slice(3);
  const { createBreaker } = require(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'));
  const { inlineStats } = require(path.join(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'), 'lib', 'testing'));
  const b = createBreaker({ name: 'slow-upstream', baseUrl: `http://127.0.0.1:${port}`, logger: false, inlineIo: inline === 'true' });
  (async () => {
    for (let i = 0; i < 5; i++) await b.fire('/warm');
    const calls0 = inlineStats().calls;
    const c0 = process.cpuUsage();
    for (let i = 0; i < Number(n); i++) await b.fire('/x');
    const c = process.cpuUsage(c0);
    process.stdout.write(`${JSON.stringify({ cpuUs: (c.user + c.system) / Number(n), inline: inlineStats().calls - calls0 })}\n`);
    b.shutdown();
  })();
} else {
  main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exitCode = 1;
  });
}

function client(port, inline, n) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [__filename, 'child', String(port), String(inline), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 120_000);
    c.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out.trim().split('\n').pop()));
      else reject(new Error(`client exited with ${code}`));
    });
  });
}

async function main() {
  const i = process.argv.indexOf('--rounds');
  const rounds = i > 0 ? Math.max(1, Number(process.argv[i + 1])) : 3;
  let delay = 0;
  // setTimeout(0) waits ~1 ms in Node: the "0 ms" row is a ~1 ms upstream.
  const server = http.createServer((req, res) =>
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    }, delay),
  );
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const lines = ['| upstream delay | calls | CPU µs per call, lone calls on the JS thread (default) | of which ran there | CPU µs per call, `inlineIo: false` | ratio |', '|---:|---:|---:|---:|---:|---:|'];
  try {
    for (const d of DELAYS_MS) {
      delay = d;
      const n = Math.max(50, Math.min(400, Math.round(4000 / Math.max(d, 2))));
      const on = [];
      const off = [];
      for (let r = 0; r < rounds; r++) {
        process.stderr.write(`[slow-upstream] ${d} ms, round ${r + 1}/${rounds}\n`);
        on.push(await client(port, true, n));
        off.push(await client(port, false, n));
      }
      const a = median(on.map((x) => x.cpuUs));
      const b = median(off.map((x) => x.cpuUs));
      lines.push(`| ${d} ms | ${n} | ${a.toFixed(0)} | ${median(on.map((x) => x.inline))} | ${b.toFixed(0)} | ${(a / b).toFixed(2)}x |`);
    }
  } finally {
    server.close();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
