'use strict';

// node bench/large-body.js [json|text] [--rounds N]
//
// How long a lone call with a large body holds the JS thread: a 5.5 MB body from a server in
// another process, 20 sequential calls per round, inlineIo on and off in alternation, the
// event-loop delay sampled every 1 ms (monitorEventLoopDelay). With `json` the facade's
// JSON.parse dominates in both modes; `text` isolates the transport (issue 18, bench/README.md).

const path = require('node:path');
const { spawn } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { createBreaker } = require(process.env.DNASTORE_BENCH_MODULE || path.join(__dirname, '..'));

const kind = process.argv[2] === 'text' ? 'text/plain' : 'application/json';
const ri = process.argv.indexOf('--rounds');
const rounds = ri > 0 ? Number(process.argv[ri + 1]) : 2;

const server = spawn(process.execPath, ['-e', `
  const body = JSON.stringify({ items: Array.from({ length: 120000 }, (_, i) => ({ id: i, name: 'sigil-' + i, v: i * 1.5 })) });
  const s = require('node:http').createServer((q, r) => { r.setHeader('content-type', ${JSON.stringify(kind)}); r.end(body); })
    .listen(0, '127.0.0.1', () => console.log(s.address().port + ' ' + body.length));
`], { stdio: ['ignore', 'pipe', 'inherit'] });

server.stdout.once('data', async (d) => {
  const [port, len] = String(d).trim().split(' ').map(Number);
  console.log(`| inlineIo | body | ms per call | CPU ms per call | loop delay p99 ms | loop delay max ms |\n|---|---|---:|---:|---:|---:|`);
  try {
    for (let r = 0; r < rounds; r++) {
      for (const inlineIo of [true, false]) {
        const b = createBreaker({ name: `large-${r}-${inlineIo}`, baseUrl: `http://127.0.0.1:${port}`, logger: false, inlineIo, lkgMaxEntries: 0 });
        await b.fire('/big');
        const h = monitorEventLoopDelay({ resolution: 1 });
        h.enable();
        const c0 = process.cpuUsage();
        const t0 = Date.now();
        for (let i = 0; i < 20; i++) await b.fire('/big');
        const c = process.cpuUsage(c0);
        h.disable();
        const ms = (x) => (x / 1e6).toFixed(1);
        console.log(`| ${inlineIo} | ${(len / 1e6).toFixed(1)} MB ${kind} | ${((Date.now() - t0) / 20).toFixed(1)} | ${((c.user + c.system) / 20000).toFixed(1)} | ${ms(h.percentile(99))} | ${ms(h.max)} |`);
        b.shutdown();
      }
    }
  } finally {
    server.kill();
  }
});
