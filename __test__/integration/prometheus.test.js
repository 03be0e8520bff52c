'use strict';

// The monitoring/ artefacts proven against the real thing: promtool on the rules, and a real
// Prometheus (Debian's `prometheus` on PATH) scraping a real service that uses
// dnastore-breaker through an outage and a recovery, then answering every dashboard query.
// The service also writes through the breaker's durable outbox: writes are queued (and,
// once the small outbox is full, refused) during the outage, delivered or dead-lettered
// after it, and then left stuck while DNAStore fails only writes, for the "not draining" alert.
// The tests run in order and share one timeline (start -> outage -> recovery -> writes fail ->
// queries).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { freePort } = require('../helpers/upstream');
const { startRedis } = require('../helpers/redis');

const ROOT = path.join(__dirname, '..', '..');
const PROM_DIR = path.join(ROOT, 'monitoring', 'prometheus');
const DASHBOARD = path.join(ROOT, 'monitoring', 'grafana', 'dnastore-breaker.json');
const SERVICE = path.join(__dirname, '..', 'fixtures', 'metrics-service.js');
const NAME = `prom-it-${process.pid}`;
const SCRAPE = '1s';
// What Grafana would put in for a 1 s scrape interval (rate windows need >= 2 samples).
const RATE_INTERVAL = '10s';
const INTERVAL = '2s';

jest.setTimeout(30000);

const children = [];
let tmp;
let servicePort;
let promPort;
let promUrl;
let startedAt;
let redis;


// Keeps the last output of a child for failure messages.
function start(cmd, args, opts) {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  const keep = (d) => {
    child.output = (child.output + d).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.once('exit', resolve));
  children.push(child);
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer;
  const killed = await Promise.race([child.exited.then(() => true), new Promise((r) => (timer = setTimeout(r, 5000, false)))]);
  clearTimeout(timer);
  if (!killed) {
    child.kill('SIGKILL');
    await child.exited;
  }
}

// Polls fn until it returns a truthy value or the deadline passes (then throws the last state).
// Every wait also stops at the file's overall budget, so a failing run still ends in < 90 s.
const BUDGET_END = Date.now() + 75000;

async function until(what, fn, ms = 15000) {
  const deadline = Math.min(Date.now() + ms, BUDGET_END);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function api(pathAndQuery) {
  const res = await fetch(`${promUrl}${pathAndQuery}`);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${JSON.stringify(body)}`);
  return body.data;
}

async function instant(query) {
  const data = await api(`/api/v1/query?query=${encodeURIComponent(query)}`);
  return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

async function range(query, fromSec, toSec) {
  const q = new URLSearchParams({ query, start: String(fromSec), end: String(toSec), step: '1' });
  return (await api(`/api/v1/query_range?${q}`)).result;
}

function drive(mode) {
  return fetch(`http://127.0.0.1:${servicePort}/drive?mode=${mode}`).then((r) => {
    if (!r.ok) throw new Error(`drive ${mode}: ${r.status}`);
    return r.json();
  });
}

const stateQuery = `dnastore_circuit_state{name="${NAME}"}`;
const tripsQuery = `dnastore_circuit_trips_total{name="${NAME}"}`;
const outbox = (metric, labels = '') => `${metric}{name="${NAME}"${labels}}`;
// One value of a single-series query (NaN when there is none).
const valueOf = async (query) => (await instant(query))[0]?.value ?? NaN;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-prom-'));
  // The fleet circuit's series need a Redis (a fleet of one).
  redis = await startRedis();

  const service = start(process.execPath, [SERVICE], {
    cwd: ROOT,
    // A small outbox, so the outage also fills it and refused writes show.
    env: { ...process.env, BREAKER_NAME: NAME, MAX_LIFETIME_MS: '120000', OUTBOX_DIR: path.join(tmp, 'outbox'), OUTBOX_MAX_ENTRIES: '20', FLEET_REDIS_URL: redis.url },
  });
  servicePort = await until('the service to listen', () => {
    const line = service.output.split('\n').find((l) => l.startsWith('{"port"'));
    if (service.exitCode !== null) throw new Error(`service exited: ${service.output}`);
    return line && JSON.parse(line).port;
  }, 10000);

  promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  fs.writeFileSync(
    path.join(tmp, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${SCRAPE}`,
      `  evaluation_interval: ${SCRAPE}`,
      'rule_files:',
      `  - ${JSON.stringify(path.join(PROM_DIR, 'alerts.yml'))}`,
      'scrape_configs:',
      '  - job_name: sigil-api',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${servicePort}']`,
      '',
    ].join('\n'),
  );
  const prom = start('prometheus', [
    `--config.file=${path.join(tmp, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(tmp, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn',
  ], { cwd: tmp });
  await until('Prometheus to be ready', async () => {
    if (prom.exitCode !== null) throw new Error(`prometheus exited: ${prom.output}`);
    return (await fetch(`${promUrl}/-/ready`)).ok;
  }, 15000);
  startedAt = Math.floor(Date.now() / 1000) - 1;
  await until('a successful scrape of the service', async () => (await instant(`up{job="sigil-api"} == 1`)).length === 1);
}, 40000);

afterAll(async () => {
  await Promise.all(children.map(stop));
  if (redis) await redis.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('promtool check rules and promtool test rules pass', () => {
  for (const args of [['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml'], ['check', 'config', 'prometheus.yml']]) {
    const r = spawnSync('promtool', args, { cwd: PROM_DIR, encoding: 'utf8', timeout: 30000 });
    expect({ args, status: r.status, out: r.status === 0 ? '' : `${r.stdout}${r.stderr}` }).toEqual({ args, status: 0, out: '' });
  }
});

test("the service's merged /metrics passes promtool check metrics", async () => {
  const text = await (await fetch(`http://127.0.0.1:${servicePort}/metrics`)).text();
  expect(text).toContain(`dnastore_circuit_state{name="${NAME}"} 0`);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20000 });
  expect(`${r.stdout}${r.stderr}`).toBe('');
  expect(r.status).toBe(0);
});

test('during an outage Prometheus sees the circuit open, trips rise and the open alert pending', async () => {
  const [before] = await instant(tripsQuery);
  expect(before.value).toBe(0);
  const [state] = await instant(stateQuery);
  expect(state.value).toBe(0);

  await drive('down');
  await until('dnastore_circuit_state == 1', async () => (await instant(`${stateQuery} == 1`)).length === 1);
  await until('trips to rise', async () => (await instant(tripsQuery))[0].value > before.value);
  // The alert's expression matches the real series (its `for: 1m` is unit-tested with promtool).
  const pending = await until('DNAStoreCircuitOpen to be pending', async () => {
    const { alerts } = await api('/api/v1/alerts');
    return alerts.find((a) => a.labels.alertname === 'DNAStoreCircuitOpen' && a.labels.name === NAME);
  });
  expect(pending.labels).toMatchObject({ job: 'sigil-api', severity: 'critical' });
  expect(['pending', 'firing']).toContain(pending.state);
  // Keep the outage long enough for the rate windows of the dashboard to cover it.
  await new Promise((r) => setTimeout(r, 3000));
});

test('during the outage writes are queued in the outbox, its oldest write ages, and a full outbox refuses', async () => {
  await until('queued writes', async () => (await valueOf(outbox('dnastore_outbox_entries'))) > 0);
  await until('writes refused by the full outbox', async () => (await valueOf(outbox('dnastore_outbox_refused_total', ',reason="full"'))) > 0);
  expect(await valueOf(outbox('dnastore_outbox_entries'))).toBe(20);
  expect(await valueOf(outbox('dnastore_outbox_enqueued_total'))).toBeGreaterThanOrEqual(20);
  await until('the oldest queued write to age', async () => (await valueOf(outbox('dnastore_outbox_oldest_age_seconds'))) >= 1);
  expect(await valueOf(outbox('dnastore_outbox_delivered_total'))).toBe(0);
});

test('after recovery the state returns to 0', async () => {
  await drive('up');
  await until('dnastore_circuit_state == 0', async () => (await instant(`${stateQuery} == 0`)).length === 1);
  const [trips] = await instant(tripsQuery);
  expect(trips.value).toBeGreaterThanOrEqual(1);
  // A few more scrapes so post-recovery samples exist in every window.
  await new Promise((r) => setTimeout(r, 3000));
});

test('after recovery the outbox drains: writes delivered (latency observed), refused ones dead-lettered, none left', async () => {
  await until('the outbox to drain', async () => (await valueOf(outbox('dnastore_outbox_entries'))) === 0);
  // Every tenth write is one DNAStore refuses: queued during the outage, dead-lettered now.
  expect(await valueOf(outbox('dnastore_outbox_delivered_total'))).toBeGreaterThanOrEqual(15);
  expect(await valueOf(outbox('dnastore_outbox_dead_lettered_total', ',reason="rejected"'))).toBeGreaterThanOrEqual(1);
  expect(await valueOf(outbox('dnastore_outbox_dead_letters'))).toBeGreaterThanOrEqual(1);
  expect(await valueOf(outbox('dnastore_outbox_delivery_seconds_count'))).toBe(await valueOf(outbox('dnastore_outbox_delivered_total')));
  expect(await valueOf(outbox('dnastore_outbox_oldest_age_seconds'))).toBe(0);
});

test('DNAStoreOutboxNotDraining matches the real series when DNAStore fails only writes (windows shortened)', async () => {
  const { groups } = await api('/api/v1/rules');
  const rule = groups.flatMap((g) => g.rules).find((r) => r.name === 'DNAStoreOutboxNotDraining');
  // The rule's own expression as Prometheus loaded it, with 4 s windows instead of 5 minutes.
  expect(rule.query).toMatch(/\[5m\]/);
  const shortened = rule.query.replaceAll('[5m]', '[4s]');
  await drive('writes-fail');
  const hit = await until('the shortened expression to match', async () => (await instant(shortened)).find((s) => s.metric.name === NAME), 20000);
  expect(hit.metric).toEqual({ job: 'sigil-api', instance: `127.0.0.1:${servicePort}`, name: NAME });
  expect(hit.value).toBeGreaterThanOrEqual(3);
  // The circuit stayed closed: reads kept succeeding, only the writes failed.
  expect(await valueOf(`max_over_time(${stateQuery}[4s])`)).toBe(0);
  await drive('up');
  await until('the outbox to drain again', async () => (await valueOf(outbox('dnastore_outbox_entries'))) === 0);
  expect(await instant(shortened)).toEqual([]);
});

test('a slow DNAStore fills the bulkhead: in flight at the cap, refusals counted, the circuit closed, DNAStoreConcurrencyRejections matches (windows shortened)', async () => {
  const { groups } = await api('/api/v1/rules');
  const rule = groups.flatMap((g) => g.rules).find((r) => r.name === 'DNAStoreConcurrencyRejections');
  // The rule's own expression as Prometheus loaded it, with 4 s windows instead of 1 minute
  // (its `for: 2m` is unit-tested with promtool).
  expect(rule.query).toMatch(/\[1m\]/);
  const shortened = rule.query.replaceAll('[1m]', '[4s]');
  await drive('slow');
  const hit = await until('the shortened expression to match', async () => (await instant(shortened)).find((s) => s.metric.name === NAME), 20000);
  expect(hit.metric).toEqual({ job: 'sigil-api', instance: `127.0.0.1:${servicePort}`, name: NAME });
  expect(hit.value).toBeGreaterThan(1);
  const series = (m) => `${m}{name="${NAME}"}`;
  expect(await valueOf(`max_over_time(${series('dnastore_inflight_requests')}[4s])`)).toBe(2);
  expect(await valueOf(series('dnastore_concurrency_limit'))).toBe(2);
  expect(await valueOf(`max_over_time(${series('dnastore_queued_requests')}[4s])`)).toBeGreaterThan(0);
  // Hedging stood down: hedges due while every bulkhead slot was taken were skipped.
  expect(await valueOf(`sum(dnastore_hedges_total{name="${NAME}",result="skipped"})`)).toBeGreaterThan(0);
  // Refused calls are not DNAStore failures: the circuit stayed closed.
  expect(await valueOf(`max_over_time(${stateQuery}[4s])`)).toBe(0);
  await drive('up');
  await until('refusals to stop', async () => (await instant(shortened)).length === 0, 20000);
});

test('every query of the Grafana dashboard returns data', async () => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);

  expect(dashboard.templating.list.find((v) => v.type === 'datasource')).toMatchObject({ name: 'datasource', query: 'prometheus' });
  // The `name` variable: label_values(dnastore_circuit_state, name) offers our breaker.
  const variable = dashboard.templating.list.find((v) => v.name === 'name');
  expect(variable.definition).toBe('label_values(dnastore_circuit_state, name)');
  expect(await api(`/api/v1/label/name/values?match[]=dnastore_circuit_state`)).toContain(NAME);

  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels || [])]).filter((p) => p.type !== 'row');
  const queries = panels.flatMap((p) => (p.targets || []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));
  expect(queries.length).toBeGreaterThanOrEqual(15);
  for (const p of panels) expect({ panel: p.title, targets: (p.targets || []).length > 0 }).toEqual({ panel: p.title, targets: true });

  const now = Math.floor(Date.now() / 1000);
  const empty = [];
  // The outbox panels were driven above (queued, aged, refused, delivered, dead-lettered):
  // each of their queries must have shown more than zeros, not just exist.
  const zeros = [];
  for (const q of queries) {
    const expr = q.expr
      .replaceAll('${name}', NAME)
      .replaceAll('$name', NAME)
      .replaceAll('$__rate_interval', RATE_INTERVAL)
      .replaceAll('$__interval', INTERVAL);
    expect(expr).not.toMatch(/\$/);
    const series = await range(expr, startedAt, now);
    const finite = series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
    if (!finite) empty.push(`${q.panel} [${q.refId}]: ${expr}`);
    const positive = series.some((s) => s.values.some(([, v]) => Number(v) > 0));
    if (expr.includes('dnastore_outbox_') && !positive) zeros.push(`${q.panel} [${q.refId}]: ${expr}`);
    // The bulkhead was driven too (slow mode): in flight, the limit and refusals were non-zero,
    // and the reads' hedges (hedgeAfterMs 200 < 300 ms answers) were skipped, the slots all taken.
    if (/dnastore_(inflight_requests|concurrency_limit|concurrency_rejections_total|hedges_total)/.test(expr) && !positive) zeros.push(`${q.panel} [${q.refId}]: ${expr}`);
  }
  expect(empty).toEqual([]);
  expect(zeros).toEqual([]);
  expect(queries.filter((q) => q.expr.includes('dnastore_outbox_')).length).toBe(9);
});

test('Prometheus evaluates every alert rule without error against the real series', async () => {
  const { groups } = await api('/api/v1/rules');
  const rules = groups.flatMap((g) => g.rules);
  expect(rules.map((r) => r.name).sort()).toEqual([
    'DNAStoreCircuitFlapping',
    'DNAStoreCircuitOpen',
    'DNAStoreConcurrencyRejections',
    'DNAStoreFailureRateHigh',
    'DNAStoreFallbackRatioHigh',
    'DNAStoreFleetCircuitDisconnected',
    'DNAStoreFleetRecordForged',
    'DNAStoreLKGTampered',
    'DNAStoreOutboxDeadLetters',
    'DNAStoreOutboxNotDraining',
    'DNAStoreOutboxRefused',
    'DNAStoreOutboxTampered',
    'DNAStoreOutboxWriteStuck',
    'DNAStoreTLSHandshakeFailing',
    'DNAStoreTLSInsecure',
    'DNAStoreTLSReloadFailed',
  ]);
  for (const r of rules) expect({ rule: r.name, health: r.health, lastError: r.lastError || '' }).toEqual({ rule: r.name, health: 'ok', lastError: '' });
});
