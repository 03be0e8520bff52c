'use strict';

// The Node contenders, each built the way a service would use it: a circuit breaker around
// a GET that parses the JSON body and treats a non-2xx as a failure. Breaker settings match
// dnastore-breaker's defaults (3 s timeout, 50 % over a 10 s window of 10 buckets, volume 20,
// 10 s reset) so every contender does the same bookkeeping.
//
// create(name, target, mode) -> { call: () => Promise, close: () => Promise|void }
//   target: { url, origin, path } of nginx; mode: 'closed' | 'open'.

const OPOSSUM_OPTIONS = {
  timeout: 3000,
  errorThresholdPercentage: 50,
  resetTimeout: 10_000,
  rollingCountTimeout: 10_000,
  rollingCountBuckets: 10,
  volumeThreshold: 20,
};

// What every contender answers while open, the shape dnastore-breaker resolves to.
const FALLBACK = () => ({ fallback: true, data: null, error: 'DNAStore unavailable', code: 'EOPENBREAKER', source: 'none' });

function httpFailure(status) {
  const err = new Error(`upstream answered ${status}`);
  err.status = status;
  return err;
}

// Clients are required once, on first use, so a child loads only its own contender.
let nodeFetch;
let undiciRequest;

async function nodeFetchGet(url) {
  nodeFetch ??= require('node-fetch');
  const res = await nodeFetch(url);
  if (!res.ok) throw httpFailure(res.status);
  return res.json();
}

async function globalFetchGet(url) {
  const res = await fetch(url);
  if (!res.ok) throw httpFailure(res.status);
  return res.json();
}

async function undiciGet(url, signal) {
  undiciRequest ??= require('undici').request;
  const { statusCode, body } = await undiciRequest(url, signal ? { signal } : undefined);
  if (statusCode < 200 || statusCode >= 300) {
    await body.dump();
    throw httpFailure(statusCode);
  }
  return body.json();
}

function opossum(get) {
  return (target, mode) => {
    const CircuitBreaker = require('opossum');
    const breaker = new CircuitBreaker(get, OPOSSUM_OPTIONS);
    breaker.fallback(FALLBACK);
    if (mode === 'open') breaker.open();
    return { call: () => breaker.fire(target.url), close: () => breaker.shutdown() };
  };
}

function cockatiel(target, mode) {
  // cockatiel hangs every attempt's abort listener on one shared parent signal: 50 in
  // flight trip Node's leak warning (10) though nothing leaks. Raise the default first.
  require('node:events').setMaxListeners(1000);
  const c = require('cockatiel');
  // Retry (2 more attempts, exponential backoff) outside a sampling breaker, plus a
  // timeout per attempt: the same policy stack dnastore-breaker applies.
  const retry = c.retry(c.handleAll, { maxAttempts: 2, backoff: new c.ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) });
  const breaker = c.circuitBreaker(c.handleAll, {
    halfOpenAfter: 10_000,
    breaker: new c.SamplingBreaker({ threshold: 0.5, duration: 10_000, minimumRps: 2 }),
  });
  const timeout = c.timeout(3000, c.TimeoutStrategy.Aggressive);
  const fallback = c.fallback(c.handleType(c.BrokenCircuitError), FALLBACK);
  const policy = c.wrap(fallback, retry, breaker, timeout);
  if (mode === 'open') breaker.isolate();
  return { call: () => policy.execute(({ signal }) => undiciGet(target.url, signal)), close: () => {} };
}

async function dnastore(target, mode, extra = {}, pkg = process.env.DNASTORE_BENCH_MODULE, init = undefined) {
  // DNASTORE_BENCH_MODULE points at another copy of the package (a profiling build with symbols).
  const { createBreaker } = require(pkg || 'dnastore-breaker');
  if (mode !== 'open') {
    const breaker = createBreaker({ name: 'bench', baseUrl: target.origin, logger: false, ...extra });
    return { call: () => breaker.fire(target.path, init), close: () => breaker.shutdown() };
  }
  // Opened the way production opens it: one refused call with maxFailures 1, so the bench
  // measures the real short-circuit path (state check, LKG lookup, fallback object).
  const { freePort } = require('./nginx');
  const dead = await freePort();
  const breaker = createBreaker({
    name: 'bench-open',
    baseUrl: `http://127.0.0.1:${dead}`,
    logger: false,
    maxFailures: 1,
    maxAttempts: 1,
    resetTimeout: 3_600_000,
    ...extra,
  });
  await breaker.fire(target.path);
  if (breaker.state !== 'open') throw new Error(`dnastore-breaker did not open (state ${breaker.state})`);
  return { call: () => breaker.fire(target.path, init), close: () => breaker.shutdown() };
}

// OpenTelemetry variants (lib/tracing.js). @opentelemetry/api is a devDependency, so the plain
// dnastore-breaker contender runs with the API installed and no tracer provider registered.
// `hideOtel` makes it unresolvable (the package absent); `registerOtel` registers the SDK's
// provider with a batch processor and an exporter that drops the spans (the cost of making,
// attributing and propagating a span, not of shipping it).
function hideOtel() {
  const Module = require('node:module');
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function hidden(request, ...rest) {
    if (request.startsWith('@opentelemetry/')) {
      const err = new Error(`Cannot find module '${request}'`);
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    }
    return resolve.call(this, request, ...rest);
  };
}

function registerOtel() {
  const api = require('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { W3CTraceContextPropagator } = require('@opentelemetry/core');
  const drop = { export: (spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() };
  api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(drop)] }));
  api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

function withOtel(setup) {
  return (t, m) => {
    setup();
    return dnastore(t, m, { coalesce: false });
  };
}

// The harness's own cost per call: a call that is already settled. Any open-circuit
// contender's calls/s is bounded by this.
function floor() {
  const value = FALLBACK();
  return { call: () => Promise.resolve(value), close: () => {} };
}

const CONTENDERS = {
  'opossum+node-fetch': opossum(nodeFetchGet),
  'opossum+fetch': opossum(globalFetchGet),
  'opossum+undici': opossum((url) => undiciGet(url)),
  'cockatiel+undici': cockatiel,
  // Every call is its own upstream request, as for the other contenders.
  'dnastore-breaker': (t, m) => dnastore(t, m, { coalesce: false }),
  // The default configuration: identical in-flight GETs share one upstream request, so at
  // concurrency 50 it sends fewer requests than the others. Shown for information only.
  'dnastore-breaker (coalesce)': (t, m) => dnastore(t, m),
  // Every call with one long-lived AbortSignal that never fires, as a service passing its
  // shutdown signal to each call: the per-call cost of abortability (issue 11, defect 4).
  'dnastore-breaker (AbortSignal)': (t, m) => dnastore(t, m, { coalesce: false }, undefined, { signal: new AbortController().signal }),
  // Every call with an init (a header and a timeout), as most service calls have: the
  // arguments object crosses into the binding (issue 27: one crossing, read by name).
  'dnastore-breaker (init)': (t, m) => dnastore(t, m, { coalesce: false }, undefined, { headers: { accept: 'application/json' }, timeout: 3000 }),
  // The bulkhead on (issue 15) at a cap above the bench's concurrency (50): the slot's
  // acquire and release on every call, never a refusal. Must stay within 3 % of the above.
  'dnastore-breaker (bulkhead 64)': (t, m) => dnastore(t, m, { coalesce: false, maxConcurrent: 64 }),
  // Tracing cost (issue 16): without @opentelemetry/api at all, and with a provider registered.
  'dnastore-breaker (no otel api)': withOtel(hideOtel),
  'dnastore-breaker (otel provider)': withOtel(registerOtel),
  // `npm run bench -- --baseline DIR`: the same contender from another build, for A/B runs.
  'dnastore-breaker (baseline)': (t, m) => dnastore(t, m, { coalesce: false }, process.env.DNASTORE_BENCH_BASELINE),
  'dnastore-breaker (AbortSignal, baseline)': (t, m) =>
    dnastore(t, m, { coalesce: false }, process.env.DNASTORE_BENCH_BASELINE, { signal: new AbortController().signal }),
  floor,
};

async function create(name, target, mode) {
  const make = CONTENDERS[name];
  if (!make) throw new Error(`unknown contender ${name}`);
  return make(target, mode);
}

module.exports = { create, names: Object.keys(CONTENDERS) };
