'use strict';

// Worker threads, as a service runs them: the main thread loaded the addon or not, 1-4
// workers, loaded one after another or at once, each shut down or terminated with calls in
// flight. Every cell runs in its own process (so "main never loaded it" holds) and must end
// with "survived" and exit code 0. Issue 11, crash 1: with the main thread not loading the
// addon, the second worker's require() died with SIGSEGV (mimalloc v3; see Cargo.toml).

const { execFile } = require('node:child_process');
const path = require('node:path');

const FIXTURE = path.join(__dirname, 'fixtures', 'worker-matrix.js');

function cell(mainLoaded, workers, mode, terminate) {
  return new Promise((resolve) => {
    execFile(process.execPath, [FIXTURE, mainLoaded, String(workers), mode, terminate], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, signal: err?.signal, stdout, stderr });
    });
  });
}

const cells = [];
for (const mainLoaded of ['0', '1']) {
  for (const workers of [1, 2, 3, 4]) {
    for (const mode of ['sequential', 'concurrent']) {
      for (const terminate of ['0', '1']) cells.push([mainLoaded, workers, mode, terminate]);
    }
  }
}

test(`worker matrix: ${cells.length} cells, none crashes`, async () => {
  const failed = [];
  // Two at a time: each cell is a process with up to five worker threads.
  for (let i = 0; i < cells.length; i += 2) {
    const batch = cells.slice(i, i + 2);
    const results = await Promise.all(batch.map((c) => cell(...c)));
    results.forEach((r, j) => {
      if (r.code !== 0 || !r.stdout.includes('survived')) {
        const [mainLoaded, workers, mode, terminate] = batch[j];
        failed.push({ mainLoaded, workers, mode, terminate, code: r.code, signal: r.signal, stderr: r.stderr.slice(0, 500) });
      }
    });
  }
  expect(failed).toEqual([]);
}, 300_000);
