'use strict';

// OpenTelemetry spans with the official SDK (in-memory exporter) against a real local
// upstream that records the traceparent it received: success, retries, fallbacks, HTTP
// errors, an open circuit, coalesced GETs; and nothing at all without a provider or without
// the API package installed.

const { execFileSync } = require('node:child_process');
const path = require('node:path');
const api = require('@opentelemetry/api');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { createBreaker } = require('..');
const { startUpstream, json, uniqueName } = require('./helpers/upstream');

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();
let up;
const breakers = [];

beforeAll(async () => {
  up = await startUpstream();
});

afterAll(async () => {
  await up.stop();
  api.trace.disable();
  api.propagation.disable();
  api.context.disable();
});

afterEach(() => {
  for (const b of breakers.splice(0)) b.shutdown();
  exporter.reset();
  up.hits.length = 0;
  up.set((req, res) => json(res, 200, { ok: true }));
});

function breaker(opts) {
  const b = createBreaker({ name: uniqueName('otel'), logger: false, baseUrl: up.url, retryBaseMs: 1, retryMaxMs: 5, lkgMaxEntries: 0, env: {}, ...opts });
  breakers.push(b);
  return b;
}

function register({ propagator = true } = {}) {
  api.trace.setGlobalTracerProvider(provider);
  api.context.setGlobalContextManager(contextManager.enable());
  if (propagator) api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

// Runs `fn` under a parent span; returns [fn's result, the parent span].
async function underParent(fn) {
  const parent = api.trace.getTracer('test').startSpan('parent');
  const r = await api.context.with(api.trace.setSpan(api.context.active(), parent), fn);
  parent.end();
  return [r, parent];
}

const spans = () => exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'dnastore-breaker');

describe('without a tracer provider', () => {
  test('nothing is recorded and no traceparent is sent', async () => {
    const b = breaker();
    await expect(b.fire('/a', { route: '/a' })).resolves.toEqual({ ok: true });
    await expect(b.fire('/b')).resolves.toEqual({ ok: true });
    expect(up.hits.map((h) => h.headers.traceparent)).toEqual([undefined, undefined]);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  test('without @opentelemetry/api installed, fire() works unchanged', () => {
    const out = JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'no-otel.js')], { encoding: 'utf8', timeout: 20000 }));
    expect(out).toEqual({ installed: false, a: { ok: true }, c: { ok: true }, traceparents: [null, null] });
  });
});

test.each(['tracer', 'propagator'])('a %s that throws leaves calls untraced, never failed', (mode) => {
  const out = JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'otel-throws.js'), mode], { encoding: 'utf8', timeout: 20000 }));
  expect(out).toEqual({ out: [{ ok: true }, { ok: true }], seen: [null, null] });
});

describe('with the SDK registered', () => {
  beforeAll(() => register());

  test('a success: a CLIENT child span with the HTTP semantic attributes; the upstream sees its traceparent', async () => {
    const b = breaker();
    const [r, parent] = await underParent(() => b.fire('/api/sigils/7?token=secret', { route: '/api/sigils/:id' }));
    expect(r).toEqual({ ok: true });
    const [s] = spans();
    expect(s.name).toBe('GET /api/sigils/:id');
    expect(s.kind).toBe(api.SpanKind.CLIENT);
    expect(s.parentSpanContext.spanId).toBe(parent.spanContext().spanId);
    expect(s.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(s.attributes).toEqual({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': up.port,
      'url.full': `${up.url}/api/sigils/7`,
      'url.template': '/api/sigils/:id',
      'http.response.status_code': 200,
      'dnastore.breaker.name': b.name,
      'dnastore.breaker.state': 'closed',
      'dnastore.attempts': 1,
    });
    expect(s.status.code).toBe(api.SpanStatusCode.UNSET);
    const tp = up.hits[0].headers.traceparent;
    expect(tp).toBe(`00-${s.spanContext().traceId}-${s.spanContext().spanId}-01`);
  });

  test('a call with no init is traced too; a caller-set traceparent wins', async () => {
    const b = breaker();
    await underParent(() => b.fire('/plain'));
    expect(spans()[0].name).toBe('GET');
    expect(up.hits[0].headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const mine = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await b.fire('/own', { headers: { traceparent: mine } });
    expect(up.hits[1].headers.traceparent).toBe(mine);
  });

  test('retries are span events with their delay and reason', async () => {
    let n = 0;
    up.set((req, res) => {
      n += 1;
      json(res, n < 3 ? 503 : 200, { n });
    });
    const b = breaker({ maxAttempts: 3 });
    await expect(b.fire('/r', { route: '/r' })).resolves.toEqual({ n: 3 });
    const [s] = spans();
    expect(s.attributes['dnastore.attempts']).toBe(3);
    expect(s.attributes['http.response.status_code']).toBe(200);
    expect(s.events.map((e) => e.name)).toEqual(['retry', 'retry']);
    expect(s.events.map((e) => e.attributes['dnastore.retry.attempt'])).toEqual([1, 2]);
    for (const e of s.events) {
      expect(e.attributes['dnastore.retry.reason']).toBe('upstream_error');
      expect(e.attributes['error.type']).toBe('EUPSTREAM');
      expect(e.attributes['dnastore.retry.delay_ms']).toBeGreaterThanOrEqual(1);
      expect(e.attributes['dnastore.retry.delay_ms']).toBeLessThanOrEqual(5);
    }
    // Dated when each retry was decided: within the span, in order, not at its end.
    const ms = (t) => t[0] * 1e3 + t[1] / 1e6;
    const [e1, e2] = s.events.map((e) => ms(e.time));
    expect(e1).toBeGreaterThanOrEqual(ms(s.startTime) - 5);
    expect(e2).toBeGreaterThan(e1);
    expect(e2).toBeLessThanOrEqual(ms(s.endTime) + 5);
        // Every attempt carried the same trace.
    expect(new Set(up.hits.map((h) => h.headers.traceparent)).size).toBe(1);
  });

  test('a hedged read: the hedge is a span event, the span says how many went out and whether one won', async () => {
    let n = 0;
    up.set((req, res) => {
      n += 1;
      const me = n;
      setTimeout(() => res.destroyed || json(res, 200, { copy: me }), me === 1 ? 1000 : 1).unref();
    });
    const b = breaker({ hedgeAfterMs: 30, maxAttempts: 1 });
    await expect(b.fire('/h')).resolves.toEqual({ copy: 2 });
    const [s] = spans();
    expect(s.attributes['dnastore.attempts']).toBe(1);
    expect(s.attributes['dnastore.hedges']).toBe(1);
    expect(s.attributes['dnastore.hedge.won']).toBe(true);
    expect(s.events.map((e) => [e.name, e.attributes['dnastore.hedge.result'], e.attributes['dnastore.hedge.attempt']])).toEqual([['hedge', 'won', 1]]);
    // Dated when it was sent: 30 ms into the span, not at its end.
    const at = (t) => t[0] * 1000 + t[1] / 1e6;
    expect(at(s.events[0].time) - at(s.startTime)).toBeGreaterThanOrEqual(25);
  });

  test('a fallback: error.type and the fallback source', async () => {
    up.set((req, res) => json(res, 503, {}));
    const b = breaker({ maxAttempts: 1, fallback: () => ({ stale: true }) });
    await expect(b.fire('/f', { route: '/f' })).resolves.toMatchObject({ fallback: true, source: 'function', data: { stale: true } });
    const [s] = spans();
    expect(s.attributes).toMatchObject({ 'http.response.status_code': 503, 'error.type': '503', 'dnastore.fallback.source': 'function', 'dnastore.attempts': 1 });
    expect(s.status.code).toBe(api.SpanStatusCode.ERROR);
  });

  test('a timeout: no status, the code is the error type', async () => {
    up.set(() => {});
    const b = breaker({ maxAttempts: 1, timeout: 50 });
    await expect(b.fire('/slow')).resolves.toMatchObject({ fallback: true, code: 'ETIMEDOUT' });
    const [s] = spans();
    expect(s.attributes).toMatchObject({ 'error.type': 'ETIMEDOUT', 'dnastore.attempts': 1 });
    expect(s.attributes['http.response.status_code']).toBeUndefined();
  });

  test('an HTTP error: the status code is the error type', async () => {
    up.set((req, res) => json(res, 404, {}));
    const b = breaker();
    await expect(b.fire('/missing', { route: '/missing' })).rejects.toMatchObject({ code: 'EHTTP', status: 404 });
    const [s] = spans();
    expect(s.attributes).toMatchObject({ 'http.response.status_code': 404, 'error.type': '404' });
    expect(s.status.code).toBe(api.SpanStatusCode.ERROR);
  });

  test('an open circuit answers with a span marked short-circuited', async () => {
    up.set((req, res) => json(res, 503, {}));
    const b = breaker({ maxAttempts: 1, maxFailures: 1 });
    await b.fire('/o');
    expect(b.state).toBe('open');
    exporter.reset();
    await expect(b.fire('/o', { route: '/o' })).resolves.toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
    await expect(b.fire('/o')).resolves.toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
    expect(up.hits).toHaveLength(1);
    const s = spans();
    expect(s).toHaveLength(2);
    for (const x of s) {
      expect(x.attributes).toMatchObject({ 'dnastore.short_circuited': true, 'dnastore.breaker.state': 'open', 'error.type': 'EOPENBREAKER', 'dnastore.attempts': 0, 'dnastore.fallback.source': 'none' });
      expect(x.status.code).toBe(api.SpanStatusCode.ERROR);
    }
  });

  test('an open circuit answered from the last-known-good cache: short-circuited, source cache', async () => {
    const b = breaker({ maxAttempts: 1, maxFailures: 1, lkgMaxEntries: 100 });
    await expect(b.fire('/lkg')).resolves.toEqual({ ok: true });
    up.set((req, res) => json(res, 503, {}));
    await expect(b.fire('/lkg')).resolves.toMatchObject({ fallback: true, source: 'cache', code: 'EUPSTREAM' });
    expect(b.state).toBe('open');
    exporter.reset();
    await expect(b.fire('/lkg', { route: '/lkg' })).resolves.toMatchObject({ fallback: true, source: 'cache', code: 'EOPENBREAKER', data: { ok: true } });
    expect(up.hits).toHaveLength(2);
    const [s] = spans();
    expect(s.attributes).toMatchObject({ 'dnastore.short_circuited': true, 'dnastore.attempts': 0, 'dnastore.fallback.source': 'cache', 'error.type': 'EOPENBREAKER', 'dnastore.breaker.state': 'open' });
  });

  test('traceparent does not split coalescing: two traces, one request, the follower has 0 attempts', async () => {
    let release;
    const gate = new Promise((r) => {
      release = r;
    });
    up.set(async (req, res) => {
      await gate;
      json(res, 200, { ok: true });
    });
    const b = breaker();
    const one = underParent(() => b.fire('/same'));
    const two = underParent(() => b.fire('/same'));
    await new Promise((r) => setTimeout(r, 100));
    release();
    await Promise.all([one, two]);
    expect(up.hits).toHaveLength(1);
    const s = spans();
    expect(s).toHaveLength(2);
    expect(s[0].spanContext().traceId).not.toBe(s[1].spanContext().traceId);
    expect(s.map((x) => x.attributes['dnastore.attempts']).sort()).toEqual([0, 1]);
    const leader = s.find((x) => x.attributes['dnastore.attempts'] === 1);
    expect(up.hits[0].headers.traceparent).toContain(leader.spanContext().traceId);
  });
});
