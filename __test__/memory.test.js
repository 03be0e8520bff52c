'use strict';

// Issue 11 (4): calls with an AbortSignal that never fires must not grow the heap. A child
// process with --expose-gc makes 200,000 calls, 50 in flight, all with one long-lived signal
// (as a service passing its shutdown signal to every call), against a real server; the JS
// heap after a full GC may not grow between 20,000 and 200,000 calls, no listener may stay
// on the signal, and no abort registration may outlive its call.

const { execFileSync } = require('node:child_process');
const path = require('node:path');

const CALLS = Number(process.env.MEMORY_TEST_CALLS || 200_000);

test(`heap stays flat over ${CALLS} calls with a long-lived AbortSignal`, () => {
  const script = `
    const http = require('node:http');
    const { getEventListeners } = require('node:events');
    const native = require(${JSON.stringify(path.join(__dirname, '..', 'binding.js'))});
    const { createBreaker } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const srv = http.createServer((q, s) => { s.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }); s.end('{}'); });
    srv.listen(0, '127.0.0.1', async () => {
      const url = 'http://127.0.0.1:' + srv.address().port + '/x';
      const b = createBreaker({ name: 'memory', logger: false });
      const signal = new AbortController().signal;
      const heap = () => { global.gc(); global.gc(); return process.memoryUsage().heapUsed; };
      let base = 0;
      for (let i = 0; i < ${CALLS}; i += 50) {
        const ps = [];
        for (let j = 0; j < 50; j++) ps.push(b.fire(url, { signal }));
        await Promise.all(ps);
        if (i + 50 === ${Math.floor(CALLS / 10)}) base = heap();
      }
      const growth = heap() - base;
      console.log(JSON.stringify({ growth, listeners: getEventListeners(signal, 'abort').length, pending: native.__pendingAborts() }));
      b.shutdown();
      srv.close();
    });
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 120_000 }));
  expect(out.listeners).toBe(0);
  expect(out.pending).toBe(0);
  // 180,000 calls: a leak of even 20 bytes per call would show as 3.6 MB.
  expect(out.growth).toBeLessThan(1.5 * 1024 * 1024);
}, 150_000);
