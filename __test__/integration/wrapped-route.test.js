'use strict';

// The example service's second style: GET /api/consciousness/sigils/:id/summary goes
// through a wrapped function (CircuitBreaker), next to the fetch breaker, in one process.
// Real processes on 127.0.0.1: the fake DNAStore is stopped for the outage.

const path = require('node:path');
const { startDnastore, spawnNode, stopProcess, freePort, request, waitFor } = require('../../examples/fake-dnastore/control');

jest.setTimeout(20000);

let store;
let api;
let base;

beforeAll(async () => {
  store = await startDnastore();
  const port = await freePort();
  api = spawnNode({
    script: path.join(__dirname, '..', '..', 'examples', 'sigil-api', 'sigil-api.cjs'),
    env: { PORT: String(port), DNASTORE_URL: store.url, DNASTORE_OUTBOX: 'off', DNASTORE_TIMEOUT_MS: '300', DNASTORE_CIRCUIT_RESET_MS: '500', LOG_LEVEL: 'info' },
    isReady: (rec) => rec.msg === 'sigil-api listening',
  });
  await api.ready;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await stopProcess(api);
  await store.close();
});

test('summary through the wrapped function; 404 mapped; outage opens its own circuit; both in /metrics', async () => {
  const created = await request('POST', `${base}/api/consciousness/sigils`, { body: { name: 'wrapped' } });
  expect(created.status).toBe(201);
  const ok = await request('GET', `${base}/api/consciousness/sigils/${created.json.id}/summary`);
  expect(ok.status).toBe(200);
  expect(ok.json).toMatchObject({ id: created.json.id, name: 'wrapped' });
  // errorFilter: a 404 is no sign of an outage.
  for (let i = 0; i < 3; i++) expect((await request('GET', `${base}/api/consciousness/sigils/nope/summary`)).status).toBe(404);

  await store.stop();
  // 1 success and 3 healthy 404s in the window: the failures must outweigh them (50 %).
  for (let i = 0; i < 4; i++) expect((await request('GET', `${base}/api/consciousness/sigils/${created.json.id}/summary`)).status).toBe(503);
  const metrics = (await request('GET', `${base}/metrics`)).body;
  expect(metrics).toContain('dnastore_circuit_state{name="dnastore-summary"} 1');
  expect(metrics).toMatch(/dnastore_circuit_state\{name="dnastore"\} \d/);
  // Open: answered at once with Retry-After, and its transition was logged.
  const fast = await request('GET', `${base}/api/consciousness/sigils/${created.json.id}/summary`);
  expect(fast.status).toBe(503);
  expect(Number(fast.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  await waitFor(() => api.lines.some((l) => l.breaker === 'dnastore-summary' && l.msg === 'DNAStore circuit breaker OPEN (failure rate)'), { timeoutMs: 5000, what: 'the OPEN log line' });
});
