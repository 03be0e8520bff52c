'use strict';

// The Sigil API, shaped like the ticket's server/sigil-api.cjs: every DNAStore call goes
// through ONE dnastore-breaker breaker. During an outage reads serve the last-known-good
// copy (200 + X-Fallback-Source/X-Fallback-Age-Ms) or 503 + Retry-After. Writes are durable:
// a sigil DNAStore cannot take now is stored in the outbox and the client gets 202 +
// Location (GET it for queued / delivered / dead letter); the outbox delivers it once
// DNAStore is back, with the same Idempotency-Key. Only when the outbox is full, failing
// or off (DNASTORE_OUTBOX=off) does a write get 503 + Retry-After saying it was not stored:
// nothing is silently dropped.
//
//   PORT=3000 DNASTORE_URL=http://127.0.0.1:9001 node examples/sigil-api/sigil-api.cjs
//
// Breaker settings come from the DNASTORE_* environment variables (see docs/options.md);
// the library's defaults apply to the ones that are unset, except the outbox, which this
// example turns on unless DNASTORE_OUTBOX says otherwise (its file goes in
// DNASTORE_OUTBOX_DIR, default ./.dnastore-outbox).

const { monitorEventLoopDelay } = require('node:perf_hooks');
const express = require('express');
const pino = require('pino');
const promClient = require('prom-client');
// registerWith adds the breaker's metric families to a prom-client registry (read from the core at scrape time).
const { createBreaker, registerWith, CircuitBreaker } = require('dnastore-breaker');
const { WriteStatus } = require('./write-status.cjs');

const LIST_LIMIT = 50;
const DEFAULT_RESET_MS = 10000; // the library's resetTimeout default
// Codes where the request provably never reached a working DNAStore, so the write did not happen.
// ECONCURRENCY: the bulkhead (maxConcurrent) refused it before anything was sent. With the
// outbox these writes are queued (202) like any other undelivered one.
// ETLS: the TLS handshake failed, so no request was sent.
const NOT_SENT = new Set(['EOPENBREAKER', 'EORDERED', 'ECONNREFUSED', 'ENOTFOUND', 'ECONCURRENCY', 'ETLS']);

function numberFrom(value, fallback) {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) ? n : fallback;
}

/**
 * Builds the Express app. `breakerOptions` win over DNASTORE_* in `env`.
 * The breaker is on `app.locals.breaker`; call `app.locals.close()` to shut it down.
 */
function createApp({ dnastoreUrl, logger, breakerOptions = {}, env = process.env } = {}) {
  const log = logger ?? pino({ level: env.LOG_LEVEL || 'info' });
  const breaker = createBreaker({
    name: 'dnastore',
    ...(dnastoreUrl ? { baseUrl: dnastoreUrl } : {}),
    // Durable writes by default in this example; an option would win over the environment,
    // so it is only set when DNASTORE_OUTBOX is not.
    ...(env.DNASTORE_OUTBOX ? {} : { outbox: 'on' }),
    ...breakerOptions,
    logger: log.child({ component: 'dnastore-breaker' }),
    env,
  });
  // Writes opt in to the outbox when there is one (outbox: 'on'); with 'all' they are anyway.
  const durable = breaker.outbox !== null;
  const writes = durable ? new WriteStatus(breaker) : null;
  const resetMs = breakerOptions.resetTimeout ?? numberFrom(env.DNASTORE_CIRCUIT_RESET_MS, DEFAULT_RESET_MS);
  let openedAt = 0;
  breaker.on('open', () => {
    openedAt = Date.now();
  });

  // While open: the time left until the breaker lets a probe through; otherwise a short pause.
  const retryAfterSeconds = () => {
    const left = breaker.state === 'open' ? openedAt + resetMs - Date.now() : 1000;
    return Math.max(1, Math.ceil(left / 1000));
  };

  // The other style, in the same process: a multi-step DNAStore access (read a sigil, then
  // derive its summary) written for opossum, wrapped unchanged but for the require above.
  // Its circuit is native too: it has its own `name` label in /metrics and logs its
  // transitions like the fetch breaker. A 404 is the caller's mistake, not an outage.
  const dnastoreBase = dnastoreUrl ?? env.DNASTORE_URL;
  const sigilSummary = async (id, tenant) => {
    const r = await fetch(`${dnastoreBase}/api/sigils/${encodeURIComponent(id)}`, { headers: tenant ? { 'x-tenant-id': tenant } : {} });
    if (!r.ok) throw Object.assign(new Error(`DNAStore answered ${r.status}`), { status: r.status });
    const sigil = await r.json();
    return { id: sigil.id, name: sigil.name, fields: Object.keys(sigil).length };
  };
  const summaries = new CircuitBreaker(sigilSummary, {
    name: 'dnastore-summary',
    timeout: env.DNASTORE_TIMEOUT_MS || 3000,
    resetTimeout: env.DNASTORE_CIRCUIT_RESET_MS || DEFAULT_RESET_MS,
    errorFilter: (err) => err.status === 404,
    logger: log.child({ component: 'dnastore-breaker' }),
  });
  summaries.fallback(() => null);

  // One registry, one scrape: the process's default metrics and the breaker's.
  const register = new promClient.Registry();
  promClient.collectDefaultMetrics({ register });
  registerWith(register);

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '256kb' }));

  // Forward the caller's tenant so the breaker's last-known-good cache keeps tenants apart.
  const upstreamHeaders = (req) => {
    const h = {};
    if (req.get('x-tenant-id')) h['x-tenant-id'] = req.get('x-tenant-id');
    return h;
  };

  const unavailable = (res, result, extra = {}) => {
    const seconds = retryAfterSeconds();
    res.set('Retry-After', String(seconds)).set('X-Fallback-Source', 'none');
    res.status(503).json({ error: 'DNAStore unavailable', code: result.code, retryAfterSeconds: seconds, ...extra });
  };

  const upstreamError = (res, err) => {
    if (err.code === 'EHTTP') {
      let body;
      try {
        body = JSON.parse(err.body);
      } catch {
        body = { error: err.body || `DNAStore answered ${err.status}` };
      }
      return res.status(err.status).json(body);
    }
    log.error({ code: err.code, err: err.message }, 'DNAStore call failed');
    return res.status(err.code === 'ESHUTDOWN' ? 503 : 500).json({ error: 'internal error', code: err.code });
  };

  // `route` labels the route-level metrics with the template, never the id-bearing URL.
  const read = (route, upstreamPath) => async (req, res) => {
    let result;
    try {
      result = await breaker.fire(upstreamPath(req), { headers: upstreamHeaders(req), route });
    } catch (err) {
      return upstreamError(res, err);
    }
    if (result && result.fallback === true) {
      if (result.source === 'none') return unavailable(res, result);
      // A stale copy is better than an error for reads; the headers let clients tell.
      res.set('X-Fallback-Source', result.source);
      if (result.ageMs !== undefined) res.set('X-Fallback-Age-Ms', String(result.ageMs));
      return res.status(200).json(result.data);
    }
    return res.status(200).json(result);
  };

  app.get('/api/consciousness/sigils', read('/api/sigils', () => `/api/sigils?limit=${LIST_LIMIT}`));
  app.get('/api/consciousness/sigils/:id', read('/api/sigils/:id', (req) => `/api/sigils/${encodeURIComponent(req.params.id)}`));

  // Through the wrapped function: null is its fallback (open circuit, failure, timeout).
  app.get('/api/consciousness/sigils/:id/summary', async (req, res) => {
    let summary;
    try {
      summary = await summaries.fire(req.params.id, req.get('x-tenant-id'));
    } catch (err) {
      if (err.status === 404) return res.status(404).json({ error: 'no such sigil' });
      log.error({ code: err.code, err: err.message }, 'DNAStore summary failed');
      return res.status(500).json({ error: 'internal error', code: err.code });
    }
    if (summary === null) {
      const seconds = summaries.opened ? Math.max(1, Math.ceil(Number(summaries.options.resetTimeout) / 1000)) : 1;
      return res.set('Retry-After', String(seconds)).status(503).json({ error: 'DNAStore unavailable', breaker: summaries.name });
    }
    return res.status(200).json(summary);
  });

  app.post('/api/consciousness/sigils', async (req, res) => {
    if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body)) {
      return res.status(400).json({ error: 'body must be a JSON object' });
    }
    const headers = { ...upstreamHeaders(req), 'content-type': 'application/json' };
    // The client's key makes its own retry (after our 503) safe to repeat upstream.
    if (req.get('idempotency-key')) headers['idempotency-key'] = req.get('idempotency-key');
    let result;
    try {
      result = await breaker.fire('/api/sigils', { method: 'POST', headers, body: JSON.stringify(req.body), fullResponse: true, route: '/api/sigils', ...(durable ? { durable } : {}) });
    } catch (err) {
      return upstreamError(res, err);
    }
    if (result.queued === true) {
      // Stored durably (synced) before we got here: accepted, delivered later exactly once
      // as far as DNAStore honours the key. The key is the client's, or the one generated.
      writes.queued(result);
      const location = `/api/consciousness/writes/${encodeURIComponent(result.id)}`;
      res.set('Location', location).set('Idempotency-Key', result.idempotencyKey);
      return res.status(202).json({ queued: true, id: result.id, idempotencyKey: result.idempotencyKey, code: result.code, location });
    }
    if (result.fallback === true) {
      // Never pretend a write happened. After a timeout or reset the store may have
      // applied it, so say so, and point at the Idempotency-Key that makes retrying safe.
      const stored = NOT_SENT.has(result.code) ? false : 'unknown';
      log.warn({ code: result.code, stored }, 'sigil write rejected: DNAStore unavailable');
      return unavailable(res, result, {
        stored,
        message: stored === false
          ? 'The sigil was NOT stored. Retry after Retry-After seconds.'
          : 'The sigil may not have been stored. Retry with the same Idempotency-Key after Retry-After seconds.',
      });
    }
    // Stored live. A DNAStore that answers a repeated Idempotency-Key with 200 stored it
    // earlier: to the client it is the same create either way.
    if (result.status >= 200 && result.status < 300 && result.data && result.data.id !== undefined) {
      res.set('Location', `/api/consciousness/sigils/${encodeURIComponent(result.data.id)}`);
      return res.status(201).json(result.data);
    }
    return res.status(result.status).json(result.data);
  });

  // The status of a write answered 202 (its Location): queued, delivered or dead_letter.
  app.get('/api/consciousness/writes/:id', (req, res) => {
    const w = writes?.get(req.params.id);
    if (!w) return res.status(404).json({ error: 'no such write (unknown id, or delivered before this process started)' });
    if (w.state === 'queued') res.set('Retry-After', '1');
    return res.status(200).json(w);
  });

  // Runtime health of this process for the slow soak: event-loop delay (monitorEventLoopDelay,
  // 10 ms resolution) since the last `?reset=1`, and the resident set size.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  app.get('/admin/runtime', (req, res) => {
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    const body = {
      eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
      rssBytes: process.memoryUsage.rss(),
    };
    if (req.query.reset === '1') loopDelay.reset();
    res.json(body);
  });

  app.get('/metrics', async (_req, res) => {
    res.type(register.contentType).send(await register.metrics());
  });

  // Liveness: the process answers. Nothing about DNAStore belongs here.
  app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));

  // Readiness stays 200 while the breaker is open: every replica shares the same DNAStore,
  // so failing readiness on an upstream outage would pull ALL replicas out of the load
  // balancer and turn a degraded service (cached reads, clear 503s on writes) into a full
  // outage. The breaker state is reported for dashboards and humans instead.
  app.get('/readyz', (_req, res) => {
    const s = breaker.stats();
    res.json({
      status: 'ready',
      degraded: s.state !== 'closed',
      breakers: {
        [breaker.name]: { state: s.state, trips: s.trips, failureRate: s.failureRate, slowCalls: s.slowCalls, fallbacks: s.fallbacks, fires: s.fires, bulkhead: s.bulkhead ?? null, outbox: breaker.outbox?.stats() ?? null },
      },
    });
  });

  app.locals.breaker = breaker;
  app.locals.summaries = summaries;
  app.locals.close = () => {
    loopDelay.disable();
    summaries.shutdown();
    breaker.shutdown();
  };
  return app;
}

function main() {
  const logger = pino({ level: process.env.LOG_LEVEL || 'info' });
  const dnastoreUrl = process.env.DNASTORE_URL || 'http://127.0.0.1:9001';
  const app = createApp({ dnastoreUrl, logger });
  const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST || '127.0.0.1', () => {
    logger.info({ port: server.address().port, dnastoreUrl }, 'sigil-api listening');
  });
  server.keepAliveTimeout = 65000;
  // shutdown() settles every call in flight at once, a durable write after it is queued
  // (202 with code ESHUTDOWN): the requests in flight get their answers, then the server
  // closes. Bounded, should a client hold its connection open.
  const stop = () => {
    app.locals.close();
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Started by a driver with a stdin pipe: exit if that parent dies without cleaning up.
  if (process.env.EXIT_WITH_PARENT === '1') {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
}

if (require.main === module) main();

module.exports = { createApp };
