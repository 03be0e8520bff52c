'use strict';

// OpenTelemetry CLIENT spans for fire(), when the optional peer dependency
// @opentelemetry/api is installed and a tracer provider is registered. OTel's HTTP
// instrumentation patches Node's http and undici; the Rust client is invisible to it, so
// the facade makes the span itself, per the HTTP client semantic conventions, and injects
// the W3C `traceparent`/`tracestate` so DNAStore's own span is its child.
//
// Cost when unused: the API is required once, here; without it `startSpan` returns at its
// first test. With it but no provider registered, one method call and one comparison per
// call (bench: `dnastore-breaker` runs so; `dnastore-breaker (no otel api)` without it).
//
// Identity: `traceparent`, `tracestate` and `baggage` are on the core's no-identity list
// (crates/core/src/lkg/key.rs), so they never split the last-known-good or coalescing key.
// A GET answered by an identical one in flight (coalesced) gets its own span, with
// `dnastore.attempts` 0: the upstream saw the first caller's traceparent, not this one's
// (the request was sent once, with the first caller's headers).

let api = null;
try {
  api = require('@opentelemetry/api');
} catch {
  // Not installed: tracing stays off, nothing else changes.
}

const { performance } = require('node:perf_hooks');
const { version } = require('../package.json');

const NAME = 'dnastore-breaker';
// The methods the semantic conventions name; any other is reported as _OTHER.
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

// The API's no-op provider: what a proxy provider delegates to until one is registered.
const NOOP = api === null ? null : new api.ProxyTracerProvider().getDelegate();
// The global provider, a proxy whose delegate is set when a provider is registered. Kept
// between calls (looking it up costs ~4x the delegate check) and looked up again every
// REFRESH calls, in case another copy of the API registered its own, or the provider was
// disabled (and perhaps registered anew).
const REFRESH = 256;
let provider = api === null ? null : api.trace.getTracerProvider();
let calls = 0;
let tracerOf = null;
let tracer = null;
// Span -> when its call started (ms since the epoch), to date its retry events.
const started = new WeakMap();

/** The tracer of the registered provider; null when none is (the common, untraced case). */
function activeTracer() {
  if (api === null) return null;
  calls += 1;
  if (calls >= REFRESH) {
    calls = 0;
    provider = api.trace.getTracerProvider();
  }
  const delegate = typeof provider.getDelegate === 'function' ? provider.getDelegate() : provider;
  if (delegate === NOOP) return null;
  if (tracerOf !== delegate) {
    tracer = delegate.getTracer(NAME, version);
    tracerOf = delegate;
  }
  return tracer;
}

// `scheme://host:port/path` as the core redacts it (no credentials, no query) -> attributes.
function urlAttributes(attrs, redacted) {
  let u;
  try {
    u = new URL(redacted);
  } catch {
    return;
  }
  attrs['url.full'] = redacted;
  attrs['server.address'] = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  attrs['server.port'] = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
}

function headerNames(flat) {
  const names = new Set();
  for (let i = 0; i < flat.length; i += 2) names.add(flat[i].toLowerCase());
  return names;
}

/**
 * Starts the span of one call and injects its context into `args.headers` (the flat
 * [name, value, ...] list the binding takes). Returns null when tracing is off.
 * `redact(href)` is the core's URL redaction; `breaker` gives its name and state.
 */
function startSpan(breaker, args, redact) {
  try {
    const t = activeTracer();
    return t === null ? null : open(t, breaker, args, redact);
  } catch {
    // A tracer or propagator that throws must not break the call: it goes untraced.
    return null;
  }
}

function open(t, breaker, args, redact) {
  const breakerName = breaker.name;
  const state = breaker.state;
  const method = (args.method ?? 'GET').toUpperCase();
  const attrs = {
    'http.request.method': KNOWN_METHODS.has(method) ? method : '_OTHER',
    'dnastore.breaker.name': breakerName,
    'dnastore.breaker.state': state,
  };
  if (!KNOWN_METHODS.has(method)) attrs['http.request.method_original'] = method;
  if (args.route !== undefined) attrs['url.template'] = args.route;
  try {
    urlAttributes(attrs, redact(args.href));
  } catch {
    // An invalid URL: the call rejects EINVALID; the span still records it.
  }
  const parent = api.context.active();
  const name = args.route === undefined ? method : `${method} ${args.route}`;
  const span = t.startSpan(name, { kind: api.SpanKind.CLIENT, attributes: attrs }, parent);
  const carrier = {};
  try {
    api.propagation.inject(api.trace.setSpan(parent, span), carrier);
    if (carrier.traceparent === undefined) w3c(span, carrier);
  } catch (err) {
    span.end();
    throw err;
  }
  // A copy: the caller's request is only changed once everything above succeeded.
  const flat = args.headers === undefined ? [] : args.headers.slice();
  const given = headerNames(flat);
  for (const k of Object.keys(carrier)) {
    // A header the caller set explicitly wins.
    if (!given.has(k.toLowerCase())) flat.push(k, String(carrier[k]));
  }
  args.headers = flat;
  args.trace = true;
  started.set(span, performance.timeOrigin + performance.now());
  return span;
}

function quietly(fn) {
  try {
    fn();
  } catch {
    // Telemetry never fails a call.
  }
}

// No propagator registered (a provider set without the SDK's defaults): the W3C headers
// anyway, so DNAStore's span still joins the trace.
function w3c(span, carrier) {
  const sc = span.spanContext();
  if (!api.isSpanContextValid(sc)) return;
  const flags = (sc.traceFlags & 1).toString(16).padStart(2, '0');
  carrier.traceparent = `00-${sc.traceId}-${sc.spanId}-${flags}`;
  const ts = sc.traceState?.serialize();
  if (ts) carrier.tracestate = ts;
}

/** Records a native outcome (before the facade builds the public result). */
function recordNative(span, r) {
  quietly(() => recordOutcome(span, r));
}

function recordOutcome(span, r) {
  if (r === null || typeof r !== 'object') return;
  // A fallback has no status of its own: the last answer's (a 503, say) is the span's.
  const status = r.status ?? r.lastStatus;
  if (status !== undefined) span.setAttribute('http.response.status_code', status);
  if (r.attempts !== undefined) span.setAttribute('dnastore.attempts', r.attempts);
  if (r.retries) {
    const t0 = started.get(span);
    for (const x of r.retries) {
      const attrs = {
        'dnastore.retry.attempt': x.attempt,
        'dnastore.retry.delay_ms': x.delayMs,
        'dnastore.retry.reason': x.reason,
        'error.type': x.code,
      };
      // Dated when the retry was decided (the core's offset from the call's first attempt).
      span.addEvent('retry', attrs, t0 === undefined ? undefined : t0 + x.atMs);
    }
  }
  if (r.hedges && r.hedges.length > 0) recordHedges(span, r.hedges);
  if (r.code === 'EOPENBREAKER' && !(r.attempts > 0)) {
    // Short-circuited with a cached answer (nothing sent).
    span.setAttribute('dnastore.short_circuited', true);
    span.setAttribute('dnastore.attempts', 0);
  }
  if (r.code !== undefined) fail(span, status !== undefined && status >= 400 ? String(status) : r.code);
}

// Hedged reads (hedgeAfterMs): how many extra copies went out, whether one of them answered,
// and one event per hedge dated when it was sent (or due, when skipped).
function recordHedges(span, hedges) {
  const t0 = started.get(span);
  let sent = 0;
  let won = false;
  for (const h of hedges) {
    if (h.result !== 'skipped') sent += 1;
    if (h.result === 'won') won = true;
    const attrs = { 'dnastore.hedge.attempt': h.attempt, 'dnastore.hedge.result': h.result };
    if (h.reason != null) attrs['dnastore.hedge.skip_reason'] = h.reason;
    span.addEvent('hedge', attrs, t0 === undefined ? undefined : t0 + h.atMs);
  }
  span.setAttribute('dnastore.hedges', sent);
  span.setAttribute('dnastore.hedge.won', won);
}

/** The circuit was open and the call never crossed into native code. */
function recordShortCircuit(span) {
  quietly(() => {
    span.setAttribute('dnastore.short_circuited', true);
    span.setAttribute('dnastore.attempts', 0);
    fail(span, 'EOPENBREAKER');
  });
}

function fail(span, type) {
  span.setAttribute('error.type', type);
  span.setStatus({ code: api.SpanStatusCode.ERROR });
}

/** Ends the span when the public Promise settles; returns a Promise of the same result. */
function endWith(span, promise, stateOf) {
  return promise.then(
    (value) => {
      quietly(() => {
        // error.type was set from the native outcome (a status, or the code).
        if (value !== null && typeof value === 'object' && value.fallback === true) span.setAttribute('dnastore.fallback.source', value.source);
        span.setAttribute('dnastore.breaker.state', stateOf());
        span.end();
      });
      return value;
    },
    (err) => {
      quietly(() => {
        const status = err?.status;
        if (status !== undefined) span.setAttribute('http.response.status_code', status);
        fail(span, status !== undefined && status >= 400 ? String(status) : String(err?.code ?? 'EINTERNAL'));
        span.setAttribute('dnastore.breaker.state', stateOf());
        span.end();
      });
      throw err;
    },
  );
}

module.exports = { startSpan, recordNative, recordShortCircuit, endWith, installed: api !== null };
