'use strict';

// Starts and drives the fake DNAStore (and other example services) as child processes,
// for the integration tests, the outage demo and the k6 driver.
//
//   const store = await startDnastore();            // free loopback port, journal in a temp file
//   await store.setMode('hang');                     // or 'slow', { ms: 2000 } ...
//   await store.stop();  await store.start();        // "down": the process is gone, same port after
//   (await store.stats()).byRoute['GET /api/sigils']
//   (await store.sigils()).sigils                   // [{ idempotencyKey, sigil }]: what DNAStore holds

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const SERVER = path.join(__dirname, 'server.js');
const HOST = '127.0.0.1';

/** A port that was free a moment ago (listen on 0, read it, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One HTTP request with a hard timeout; resolves {status, headers, body, json}. */
function request(method, url, { body, headers = {}, timeout = 5000, agent } = {}) {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { ...headers };
    if (text !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(text);
    }
    const req = http.request(url, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(raw);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: raw, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(Object.assign(new Error(`timeout after ${timeout} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(text);
  });
}

/**
 * A child `node` process that prints JSON lines on stdout. Resolves once a line passes
 * `isReady`; `lines` keeps what it printed (bounded) and `onLine` sees each as it comes.
 */
function spawnNode({ script, args = [], env = {}, isReady, onLine, readyTimeoutMs = 15000, keepLines = 20000 }) {
  const child = spawn(process.execPath, [script, ...args], {
    // stdin is a pipe the child watches (EXIT_WITH_PARENT): if we die, it exits too.
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, EXIT_WITH_PARENT: '1', ...env },
  });
  const lines = [];
  const stderr = [];
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(script)} not ready after ${readyTimeoutMs} ms; stderr: ${stderr.join('').slice(-2000)}`));
    }, readyTimeoutMs);
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        rec = { msg: line };
      }
      if (lines.length < keepLines) lines.push(rec);
      if (onLine) onLine(rec);
      if (isReady(rec)) {
        clearTimeout(timer);
        resolve(rec);
      }
    });
    child.stderr.on('data', (c) => {
      if (stderr.length < 1000) stderr.push(c.toString());
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(script)} exited (${code ?? signal}) before it was ready; stderr: ${stderr.join('').slice(-2000)}`));
    });
  });
  ready.catch(() => {}); // observed by the caller; never an unhandled rejection
  return { child, pid: child.pid, lines, stderr, ready, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
async function stopProcess(proc, graceMs = 3000) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  const killer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  proc.child.kill('SIGTERM');
  await proc.exited;
  clearTimeout(killer);
}

/**
 * Starts the fake DNAStore. Options: port (default: a free one), mode, journal (file that
 * keeps sigils across stop/start; default a temp file removed by close()), onLine.
 */
async function startDnastore({ port, mode = 'up', journal, onLine } = {}) {
  const ownJournal = journal === undefined;
  const journalPath = journal ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fake-dnastore-')), 'sigils.jsonl');
  const fixedPort = port ?? (await freePort());
  let proc = null;

  async function start(startMode = mode) {
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) return;
    // The old process's listening socket is gone once it exits, but retry briefly in case
    // another process grabbed the port in between.
    for (let attempt = 0; ; attempt++) {
      proc = spawnNode({
        script: SERVER,
        args: ['--port', String(fixedPort), '--store', journalPath, '--mode', startMode],
        isReady: (rec) => rec.event === 'listening',
        onLine,
      });
      try {
        await proc.ready;
        return;
      } catch (err) {
        if (attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  const base = `http://${HOST}:${fixedPort}`;
  const control = async (method, p, body) => {
    const res = await request(method, `${base}${p}`, { body, timeout: 3000 });
    if (res.status !== 200) throw new Error(`fake DNAStore ${method} ${p}: ${res.status} ${res.body}`);
    return res.json;
  };

  await start();
  return {
    port: fixedPort,
    url: base,
    journal: journalPath,
    get pid() {
      return proc?.child.pid;
    },
    get running() {
      return !!proc && proc.child.exitCode === null && proc.child.signalCode === null;
    },
    start,
    /** Takes DNAStore down: the process exits (SIGTERM, SIGKILL with `{ kill: true }`). */
    async stop({ kill = false } = {}) {
      if (kill && this.running) proc.child.kill('SIGKILL');
      await stopProcess(proc);
    },
    async restart() {
      await this.stop();
      await start();
    },
    setMode: (m, params = {}) => control('POST', '/__control/mode', { mode: m, ...params }),
    stats: () => control('GET', '/__control/stats'),
    /** Every stored sigil with its Idempotency-Key: `{ total, sigils: [{ idempotencyKey, sigil }] }`. */
    sigils: () => control('GET', '/__control/sigils'),
    resetStats: () => control('POST', '/__control/stats/reset'),
    /** Stops the process and removes the temp journal. */
    async close() {
      await stopProcess(proc);
      if (ownJournal) fs.rmSync(path.dirname(journalPath), { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws). */
async function waitFor(fn, { timeoutMs = 10000, intervalMs = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// Ctrl-C / SIGTERM run `cleanup` once (stopping the children), then exit 130.
function stopOnSignals(cleanup, onSignal = () => {}) {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      onSignal(sig);
      cleanup().finally(() => process.exit(130));
    });
  }
}

module.exports = { startDnastore, spawnNode, stopProcess, stopOnSignals, freePort, request, waitFor, HOST };
