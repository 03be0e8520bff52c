'use strict';

// A fake DNAStore: a real HTTP server in its own process that stores sigils in memory
// (optionally journalled to a file so a stop/start "outage" keeps the data, like a real
// store would), plus a control API under /__control that switches fault modes at run time
// and lists what is stored (GET /__control/sigils, for the soak's audit).
//
// The `latency` mode delays every answer by a curve set at run time (POST /__control/mode):
//   {mode: 'latency', shape: 'fixed', ms: 2500}
//   {mode: 'latency', shape: 'ramp', fromMs: 5, toMs: 2500, rampMs: 10000}   (then stays at toMs)
//   {mode: 'latency', shape: 'step', fromMs: 5, toMs: 2500, afterMs: 0, holdMs: 20000}  (then fromMs)
// measured from when the mode was set. Stats count requests in flight now and at most
// (`inflight`, `maxInflight`; reset by POST /__control/stats/reset), what the slow soak reads.
//
// It honours Idempotency-Key as the outbox's "exactly once" relies on: a POST whose key was
// seen before stores nothing and answers the first result again (201, the same sigil, and
// `Idempotent-Replayed: true`). Keys are journalled with their sigil, so this holds across
// restarts too.
//
//   node examples/fake-dnastore/server.js --port 9001 [--store /tmp/sigils.jsonl] [--mode up]
//
// Prints one JSON line {"event":"listening","port":N} on stdout when ready.

const http = require('node:http');
const fs = require('node:fs');
const { seededRandom } = require('./random');

const MODES = ['up', 'refuse', 'hang', 'slow', 'slowbody', 'error', 'flaky', 'ratelimited', 'garbage', 'huge', 'lostreply', 'latency'];
const DEFAULTS = { ms: 2000, status: 503, p: 50, seed: 42, retryAfter: 1, mb: 20, shape: 'fixed', fromMs: 5, toMs: 2500, rampMs: 10000, afterMs: 0, holdMs: 20000 };
const SHAPES = ['fixed', 'ramp', 'step'];

/** The `latency` mode's delay `elapsed` ms after it was set. */
function latencyAt(p, elapsed) {
  if (p.shape === 'ramp') return p.fromMs + (p.toMs - p.fromMs) * Math.min(1, elapsed / Math.max(1, p.rampMs));
  if (p.shape === 'step') return elapsed >= p.afterMs && elapsed < p.afterMs + p.holdMs ? p.toMs : p.fromMs;
  return p.ms;
}
const MAX_BODY = 1024 * 1024;
const LIST_LIMIT_MAX = 500;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) continue;
    out[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
  }
  return out;
}

function createStore(journalPath) {
  const sigils = new Map();
  const keyOf = new Map(); // sigil id -> the Idempotency-Key it was created with
  const idempotent = new Map(); // Idempotency-Key -> the first POST's stored sigil
  let nextId = 1;
  let replayed = 0;
  const apply = (rec) => {
    sigils.set(rec.sigil.id, rec.sigil);
    if (rec.key) {
      idempotent.set(rec.key, rec.sigil);
      keyOf.set(rec.sigil.id, rec.key);
    }
    const n = Number(String(rec.sigil.id).replace(/^sig-/, ''));
    if (Number.isInteger(n) && n >= nextId) nextId = n + 1;
  };
  if (journalPath && fs.existsSync(journalPath)) {
    for (const line of fs.readFileSync(journalPath, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        apply(JSON.parse(line));
      } catch {
        // A torn last line from a SIGKILL: the write never completed, so it never happened.
      }
    }
  }
  return {
    get: (id) => sigils.get(id),
    list: (limit) => [...sigils.values()].slice(-limit),
    size: () => sigils.size,
    /** Every stored sigil with the Idempotency-Key it was created with (null without one). */
    records: () => [...sigils.values()].map((sigil) => ({ idempotencyKey: keyOf.get(sigil.id) ?? null, sigil })),
    /** POSTs answered from an earlier result since this process started. */
    replayed: () => replayed,
    // Returns [sigil, replayed]; a repeated key answers with the first result, unchanged.
    create(fields, key) {
      if (key && idempotent.has(key)) {
        replayed++;
        return [idempotent.get(key), true];
      }
      const sigil = { ...fields, id: `sig-${nextId++}`, createdAt: new Date().toISOString() };
      const rec = key ? { sigil, key } : { sigil };
      // Synchronous append: the 201 is only sent once the sigil would survive a restart.
      if (journalPath) fs.appendFileSync(journalPath, `${JSON.stringify(rec)}\n`);
      apply(rec);
      return [sigil, false];
    },
  };
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function routeOf(method, pathname) {
  if (pathname === '/api/sigils') return `${method} /api/sigils`;
  if (/^\/api\/sigils\/[^/]+$/.test(pathname)) return `${method} /api/sigils/:id`;
  return `${method} other`;
}

function createServer({ store, mode: initialMode = 'up', params: initialParams = {} }) {
  let mode = initialMode;
  let params = { ...DEFAULTS, ...initialParams };
  let random = seededRandom(params.seed);
  let stats = { total: 0, byRoute: {}, byMode: {}, byRouteMode: {} };
  const startedAt = Date.now();
  let modeSetAt = Date.now();
  // Requests being handled now, and the most at once since the last stats reset.
  let inflight = 0;
  let maxInflight = 0;

  const count = (route) => {
    const rm = `${route} [${mode}]`;
    stats.total++;
    stats.byRoute[route] = (stats.byRoute[route] || 0) + 1;
    stats.byMode[mode] = (stats.byMode[mode] || 0) + 1;
    stats.byRouteMode[rm] = (stats.byRouteMode[rm] || 0) + 1;
  };

  // The real store behaviour: what every mode that eventually answers builds on.
  async function answer(req, url) {
    const route = routeOf(req.method, url.pathname);
    if (route === 'POST /api/sigils') {
      let fields;
      try {
        fields = JSON.parse(await readBody(req));
      } catch (err) {
        return [err.status || 400, { error: err.status ? err.message : 'body must be JSON' }];
      }
      if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
        return [400, { error: 'body must be a JSON object' }];
      }
      // A write DNAStore refuses whenever it is sent: what a queued write that can never
      // succeed looks like (the outbox dead-letters it).
      if (typeof fields.name !== 'string' || fields.name === '') {
        return [422, { error: 'name must be a non-empty string' }];
      }
      const [sigil, replayed] = store.create(fields, req.headers['idempotency-key']);
      // The first result again, marked (as Stripe does), so a retried create looks like the
      // create it repeats.
      return [201, sigil, replayed ? { 'idempotent-replayed': 'true' } : {}];
    }
    if (route === 'GET /api/sigils') {
      const limit = Math.min(Math.max(Number(url.searchParams.get('limit')) || 50, 1), LIST_LIMIT_MAX);
      return [200, { sigils: store.list(limit), total: store.size() }];
    }
    if (route === 'GET /api/sigils/:id') {
      const sigil = store.get(decodeURIComponent(url.pathname.slice('/api/sigils/'.length)));
      return sigil ? [200, sigil] : [404, { error: 'sigil not found' }];
    }
    return [404, { error: 'no such route' }];
  }

  async function handleApi(req, res, url) {
    count(routeOf(req.method, url.pathname));
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    res.once('close', () => inflight--);
    switch (mode) {
      case 'latency':
        await new Promise((r) => setTimeout(r, latencyAt(params, Date.now() - modeSetAt)));
        break;
      case 'refuse':
        // Reset the connection without a response: the closest an HTTP server can get to a
        // refused connection while its control API stays reachable on the same port.
        req.socket.destroy();
        return;
      case 'hang':
        return; // accepted, never answered; the socket stays open until the client gives up
      case 'error':
        req.resume();
        return sendJson(res, params.status, { error: `injected ${params.status}` });
      case 'flaky':
        if (random() * 100 < params.p) {
          req.resume();
          return sendJson(res, 500, { error: 'injected flaky 500' });
        }
        break;
      case 'ratelimited':
        req.resume();
        return sendJson(res, 429, { error: 'rate limited' }, { 'retry-after': String(params.retryAfter) });
      case 'garbage':
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"sigils": [{"id": "sig-1", "name": tru');
      case 'huge':
        req.resume();
        return sendHuge(res, params.mb);
      case 'slow':
        await new Promise((r) => setTimeout(r, params.ms));
        break;
      case 'lostreply':
        // The request is handled (a write IS stored), then the connection is reset before
        // the answer: the client cannot know the outcome. Only a repeated Idempotency-Key
        // keeps its retry from storing the write twice.
        await answer(req, url);
        req.socket.destroy();
        return;
      default:
        break;
    }
    const [status, body, headers] = await answer(req, url);
    if (res.destroyed) return;
    if (mode === 'slowbody') return trickle(res, status, JSON.stringify(body), params.ms);
    sendJson(res, status, body, headers);
  }

  async function handleControl(req, res, url) {
    if (req.method === 'GET' && url.pathname === '/__control/stats') {
      return sendJson(res, 200, { ...stats, inflight, maxInflight, mode, params, latencyMs: mode === 'latency' ? latencyAt(params, Date.now() - modeSetAt) : undefined, pid: process.pid, uptimeMs: Date.now() - startedAt, sigils: store.size(), replayed: store.replayed() });
    }
    // What is stored, for an audit against what clients were told (whatever the fault mode).
    if (req.method === 'GET' && url.pathname === '/__control/sigils') {
      const records = store.records();
      return sendJson(res, 200, { total: records.length, sigils: records });
    }
    if (req.method === 'POST' && url.pathname === '/__control/stats/reset') {
      stats = { total: 0, byRoute: {}, byMode: {}, byRouteMode: {} };
      maxInflight = inflight;
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'GET' && url.pathname === '/__control/mode') return sendJson(res, 200, { mode, params });
    if (req.method === 'POST' && url.pathname === '/__control/mode') {
      let body;
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        return sendJson(res, 400, { error: 'body must be JSON {mode, ...params}' });
      }
      if (!body || !MODES.includes(body.mode)) {
        return sendJson(res, 400, { error: `mode must be one of ${MODES.join(', ')}` });
      }
      const { mode: next, ...rest } = body;
      if (next === 'latency' && rest.shape !== undefined && !SHAPES.includes(rest.shape)) {
        return sendJson(res, 400, { error: `shape must be one of ${SHAPES.join(', ')}` });
      }
      mode = next;
      modeSetAt = Date.now();
      params = { ...DEFAULTS, ...rest };
      random = seededRandom(params.seed);
      return sendJson(res, 200, { mode, params });
    }
    return sendJson(res, 404, { error: 'no such control route' });
  }

  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://fake-dnastore');
    const handler = url.pathname.startsWith('/__control') ? handleControl : handleApi;
    handler(req, res, url).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    });
  });
}

// Headers at once, then the body in ~10 slices spread over `ms`: a slow upstream that
// defeats a time-to-first-byte timeout but not a whole-call deadline.
function trickle(res, status, text, ms) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  const slices = 10;
  const size = Math.ceil(text.length / slices);
  let i = 0;
  const timer = setInterval(() => {
    if (res.destroyed || i * size >= text.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(text.slice(i * size, (i + 1) * size));
    i++;
  }, Math.max(1, Math.floor(ms / slices)));
  res.on('close', () => clearInterval(timer));
}

// A valid JSON document of about `mb` MiB, streamed so the fake store stays small.
function sendHuge(res, mb) {
  const total = Math.max(1, Math.floor(mb * 1024 * 1024));
  const chunk = 'x'.repeat(64 * 1024);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write('{"pad":"');
  let sent = 0;
  const pump = () => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) return res.once('drain', pump);
    }
    if (!res.destroyed) res.end('"}');
  };
  pump();
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const port = Number(args.port ?? process.env.PORT ?? 9001);
  const mode = args.mode ?? 'up';
  if (!MODES.includes(mode)) {
    process.stderr.write(`unknown --mode ${mode}; one of ${MODES.join(', ')}\n`);
    process.exit(2);
  }
  const server = createServer({ store: createStore(args.store), mode });
  server.listen(port, args.host ?? '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: server.address().port, pid: process.pid })}\n`);
  });
  // "Down" means the process is gone, so stopping is immediate: hung sockets die with it.
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Started by control.js with a stdin pipe: if the parent dies without cleaning up
  // (SIGKILL, a crashed test runner) the pipe closes and this process follows it.
  if (process.env.EXIT_WITH_PARENT === '1') {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}

if (require.main === module) main();

module.exports = { createServer, createStore, MODES };
