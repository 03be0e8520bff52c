'use strict';

// registerWith(register): the core's metrics inside a real prom-client Registry, driven by a
// real breaker against a real local HTTP server, and linted by the real promtool.

const http = require('node:http');
const { spawnSync } = require('node:child_process');
const client = require('prom-client');
const { createBreaker, metrics, METRICS_CONTENT_TYPE } = require('dnastore-breaker');
const { registerWith, FAMILIES } = require('../lib/prom-client');

// prom-client's own default metrics trip three promtool lints (gauges named *_total); they
// are not ours, so they are the only lines allowed when default metrics are merged in.
const PROM_CLIENT_DEFAULT_LINTS = new Set(
  ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'].map(
    (n) => `${n} non-counter metrics should not have "_total" suffix`,
  ),
);

let server;
let baseUrl;
let upstreamDown = false;
const breakers = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (upstreamDown) {
      res.statusCode = 503;
      res.end('down');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

afterEach(() => {
  for (const b of breakers.splice(0)) b.shutdown();
  upstreamDown = false;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  require('node:fs').rmSync(OUTBOX_DIR, { recursive: true, force: true });
});

// Every family has series only on a breaker with every feature, so these breakers have an
// outbox, a bulkhead, hedging and the fleet circuit (their families render only for breakers
// that have them). The fleet's Redis is a port nothing listens on: its series exist, and the
// breaker decides alone (the counts below are its own).
const OUTBOX_DIR = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'promclient-outbox-'));

function breaker(name) {
  const b = createBreaker({
    outbox: 'on',
    outboxDir: OUTBOX_DIR,
    name,
    baseUrl,
    logger: false,
    maxAttempts: 1,
    maxFailures: 3,
    volumeThreshold: 5,
    errorThresholdPercentage: 90, // only the 3 consecutive failures trip it
    resetTimeout: 600000, // stays open for the whole test
    maxConcurrent: 64, // never reached here
    hedgeAfterMs: 2000, // never due here: the upstream answers at once or refuses
    redisUrl: 'redis://127.0.0.1:1',
    fleetCircuit: 'on',
    signingSecret: 'promclient-secret',
  });
  breakers.push(b);
  return b;
}

// dnastore_route_circuit_state has series only for a breaker with circuitPerRoute whose
// routed call made its route's circuit: a companion breaker gives that family its series
// (on the breakers above it would move the counts below to the route's circuit).
async function routeCircuit(name) {
  const b = createBreaker({ name: `${name}-routes`, baseUrl, logger: false, circuitPerRoute: true });
  breakers.push(b);
  expect(await b.fire('/api/sigils/1', { route: '/api/sigils/:id' })).toEqual({ ok: true });
}

// success x2, 503 x3 (trips on consecutive failures), then 2 calls short-circuited.
async function driveThroughOutage(b) {
  upstreamDown = false;
  await routeCircuit(b.name);
  // One call names its route, so the route-level families have series too.
  expect(await b.fire('/api/sigils/1', { route: '/api/sigils/:id' })).toEqual({ ok: true });
  expect(await b.fire('/api/sigils/1')).toEqual({ ok: true });
  upstreamDown = true;
  for (let i = 0; i < 3; i++) expect(await b.fire('/api/sigils/1')).toMatchObject({ fallback: true, code: 'EUPSTREAM' });
  expect(b.state).toBe('open');
  for (let i = 0; i < 2; i++) expect(await b.fire('/api/sigils/1')).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });
}

// `name{labels} value` -> Map(key -> number), for the lines whose name starts with prefix.
function samples(text, prefix) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1).replace('+Inf', 'Infinity')));
  }
  return out;
}

function headerLines(text, prefix) {
  return text.split('\n').filter((l) => l.startsWith(`# HELP ${prefix}`) || l.startsWith(`# TYPE ${prefix}`));
}

function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20000 });
  if (r.error) throw r.error;
  return { status: r.status, lines: `${r.stdout}${r.stderr}`.split('\n').filter(Boolean) };
}

describe('registerWith(register)', () => {
  let register;

  beforeEach(() => {
    register = new client.Registry();
    client.collectDefaultMetrics({ register });
    registerWith(register);
    registerWith(register); // twice: must not duplicate or throw
  });

  test('the merged exposition carries the breaker series with the values the core counted', async () => {
    const b = breaker('promclient-drive');
    await driveThroughOutage(b);

    const text = await register.metrics();
    expect(register.contentType).toBe(METRICS_CONTENT_TYPE);
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m); // the service's own metrics are still there

    const s = samples(text, 'dnastore_');
    const v = (key) => s.get(key);
    const n = 'name="promclient-drive"';
    expect(v(`dnastore_circuit_state{${n}}`)).toBe(1);
    expect(v(`dnastore_circuit_trips_total{${n}}`)).toBe(1);
    expect(v(`dnastore_requests_total{${n},outcome="success"}`)).toBe(2);
    expect(v(`dnastore_requests_total{${n},outcome="upstream_error"}`)).toBe(3);
    expect(v(`dnastore_requests_total{${n},outcome="rejected"}`)).toBe(2);
    expect(v(`dnastore_circuit_failure_rate{${n}}`)).toBe(60);
    expect(v(`dnastore_calls_total{kind="successful_without_retry",${n}}`)).toBe(2);
    expect(v(`dnastore_calls_total{kind="failed_without_retry",${n}}`)).toBe(3);
    // The two successes were cached, so every fallback was served from the LKG cache.
    expect(v(`dnastore_fallbacks_total{${n},source="cache"}`)).toBe(5);
    expect(v(`dnastore_lkg_entries{${n}}`)).toBe(1);

    // The histogram arrives whole: every bucket, cumulative, +Inf == _count == attempts made.
    const buckets = [...s].filter(([k]) => k.startsWith(`dnastore_request_duration_seconds_bucket{${n},le=`));
    expect(buckets.map(([k]) => k.match(/le="([^"]+)"/)[1])).toEqual(
      ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'],
    );
    const counts = buckets.map(([, c]) => c);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(5);
    expect(v(`dnastore_request_duration_seconds_count{${n}}`)).toBe(5);
    expect(v(`dnastore_request_duration_seconds_sum{${n}}`)).toBeGreaterThan(0);

    // Exactly the core's series, with the core's values, and each HELP/TYPE once.
    expect(s).toEqual(samples(metrics(), 'dnastore_'));
    const headers = headerLines(text, '');
    expect(new Set(headers).size).toBe(headers.length);
    const names = headers.map((l) => l.split(' ')[2]);
    expect(names.filter((x) => x === 'dnastore_circuit_state')).toEqual(['dnastore_circuit_state', 'dnastore_circuit_state']);
    expect(headerLines(text, 'dnastore_').sort()).toEqual(headerLines(metrics(), 'dnastore_').sort());

    const lint = promtool(text);
    expect(lint.lines.filter((l) => !PROM_CLIENT_DEFAULT_LINTS.has(l))).toEqual([]);
  });

  test('promtool check metrics reports nothing on a service registry plus the breaker metrics', async () => {
    const own = new client.Registry();
    const served = new client.Counter({ name: 'sigil_http_requests_total', help: 'Requests served.', labelNames: ['route'], registers: [own] });
    const latency = new client.Histogram({ name: 'sigil_http_request_duration_seconds', help: 'Latency.', registers: [own] });
    served.inc({ route: '/api/sigils' });
    latency.observe(0.02);
    registerWith(own);
    const b = breaker('promclient-lint');
    await driveThroughOutage(b);

    const text = await own.metrics();
    expect(text).toContain('dnastore_circuit_state{name="promclient-lint"} 1');
    expect(promtool(text)).toEqual({ status: 0, lines: [] });
  });

  test("a breaker's series leave register.metrics() when it shuts down; the families stay", async () => {
    const b = breaker('promclient-gone');
    await b.fire('/api/sigils/2', { route: '/api/sigils/:id' });
    await routeCircuit('promclient-gone');
    const before = await register.metrics();
    expect(before).toContain('dnastore_circuit_state{name="promclient-gone"} 0');
    const coreHeaders = headerLines(metrics(), 'dnastore_').sort();

    b.shutdown();
    const after = await register.metrics();
    expect(after).not.toContain('name="promclient-gone"');
    expect(metrics()).not.toContain('name="promclient-gone"');
    // With no series left the families still announce themselves, once each.
    const headers = headerLines(after, 'dnastore_');
    expect(headers).toHaveLength(2 * FAMILIES.length);
    expect(new Set(headers).size).toBe(headers.length);
    expect(headers.sort()).toEqual(coreHeaders);
  });

  test("the family list (from the core) matches what the core renders", async () => {
    const b = breaker('promclient-families');
    await b.fire('/api/sigils/5', { route: '/api/sigils/:id' });
    await routeCircuit('promclient-families');
    const own = headerLines(metrics(), 'dnastore_');
    const expected = FAMILIES.flatMap(([name, type, help]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]);
    expect(expected.sort()).toEqual(own.sort());
  });

  test('an OpenMetrics registry gets each counter with a single _total', async () => {
    const om = new client.Registry(client.Registry.OPENMETRICS_CONTENT_TYPE);
    registerWith(om);
    const b = breaker('promclient-om');
    await b.fire('/api/sigils/3');
    const text = await om.metrics();
    expect(text).toContain('# TYPE dnastore_circuit_trips counter');
    expect(text).toContain('dnastore_requests_total{name="promclient-om",outcome="success"} 1');
    expect(text).not.toContain('_total_total');
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  test('refuses a registry that already holds a foreign metric of the same name, registering nothing', () => {
    const other = new client.Registry();
    new client.Gauge({ name: 'dnastore_circuit_state', help: 'someone else', registers: [other] });
    expect(() => registerWith(other)).toThrow(/dnastore_circuit_state/);
    expect(other.getMetricsAsArray()).toHaveLength(1);
    expect(() => registerWith({})).toThrow(expect.objectContaining({ code: 'EINVALID' }));
  });

  test('registering twice leaves one object per family', () => {
    const names = register.getMetricsAsArray().map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const [name] of FAMILIES) expect(names).toContain(name);
  });

  test('cluster mode: counters add up across workers, circuit state and failure rate take the worst worker', async () => {
    const b = breaker('promclient-cluster');
    await driveThroughOutage(b);
    // Two workers in the same state, as AggregatorRegistry would receive them.
    const worker = await register.getMetricsAsJSON();
    const merged = await client.AggregatorRegistry.aggregate([worker, worker]).metrics();
    const m = samples(merged, 'dnastore_');
    expect(m.get('dnastore_circuit_state{name="promclient-cluster"}')).toBe(1); // open, not 1 + 1
    expect(m.get('dnastore_circuit_failure_rate{name="promclient-cluster"}')).toBe(
      samples(await register.metrics(), 'dnastore_').get('dnastore_circuit_failure_rate{name="promclient-cluster"}'),
    );
    expect(m.get('dnastore_circuit_trips_total{name="promclient-cluster"}')).toBe(2);
    expect(m.get('dnastore_requests_total{name="promclient-cluster",outcome="success"}')).toBe(4);
  });

  test('resetMetrics() does not zero what the core owns', async () => {
    const b = breaker('promclient-reset');
    await b.fire('/api/sigils/4');
    register.resetMetrics();
    expect(await register.metrics()).toContain('dnastore_requests_total{name="promclient-reset",outcome="success"} 1');
  });
});

describe('parseExposition', () => {
  const { parseExposition } = require('../lib/prom-client');

  test('reads escapes, special values and histogram samples as the text format defines them', () => {
    const text = [
      '# HELP h A \\\\ path\\nsecond line',
      '# TYPE h histogram',
      'h_bucket{name="a\\"b\\\\c\\nd",le="+Inf"} 3',
      'h_sum{name="x"} 1.5e-7',
      'h_count{name="x"} 3 1700000000000',
      '# a comment',
      '# TYPE g gauge',
      'g NaN',
      'g{x="1",} -Inf',
      '',
    ].join('\n');
    const f = parseExposition(text);
    expect(f.get('h').help).toBe('A \\ path\nsecond line');
    expect(f.get('h').samples).toEqual([
      { name: 'h_bucket', labels: { name: 'a"b\\c\nd', le: '+Inf' }, value: 3 },
      { name: 'h_sum', labels: { name: 'x' }, value: 1.5e-7 },
      { name: 'h_count', labels: { name: 'x' }, value: 3 },
    ]);
    expect(f.get('g').type).toBe('gauge');
    expect(f.get('g').samples.map((s) => s.value)).toEqual([NaN, -Infinity]);
    expect(() => parseExposition('m{a="unterminated} 1')).toThrow(/unterminated/);
    expect(() => parseExposition('m one')).toThrow(/unparseable/);
  });
});
