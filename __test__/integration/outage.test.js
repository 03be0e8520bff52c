'use strict';

// The ticket's integration checks against real processes: the fake DNAStore and the Sigil
// API each run as a child process; "outage" means the DNAStore process is stopped.
// The tests run in order and tell one story: warm up, outage, recovery, slow upstreams.
// The API's writes are durable (its default): a write during the outage is answered 202 and
// delivered after it, exactly once. A second API with DNASTORE_OUTBOX=off shows the 503.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startDnastore, spawnNode, stopProcess, freePort, request, waitFor } = require('../../examples/fake-dnastore/control');

const DEADLINE_MS = 1000;
// Loopback HTTP plus a busy 2-core CI machine; still far below the 5 s a hung call would take.
const SLACK_MS = 400;
const CLIENT_TIMEOUT_MS = 5000;
const API_ENV = {
  DNASTORE_TIMEOUT_MS: '300',
  DNASTORE_DEADLINE_MS: String(DEADLINE_MS),
  DNASTORE_CIRCUIT_RESET_MS: '1000',
  DNASTORE_CIRCUIT_VOLUME_THRESHOLD: '5',
  DNASTORE_CIRCUIT_ROLLING_MS: '5000',
  DNASTORE_CIRCUIT_ROLLING_BUCKETS: '5',
  LOG_LEVEL: 'info',
};

jest.setTimeout(20000);

let store;
let api;
let apiNoOutbox;
let base;
let baseNoOutbox;
let outboxDir;
const warmIds = [];
// Writes answered 202 during the outage: { key, location, name }.
const queued = [];

const get = (p) => timed(() => request('GET', `${base}${p}`, { timeout: CLIENT_TIMEOUT_MS }));
const post = (body, { key, to = base } = {}) =>
  timed(() => request('POST', `${to}/api/consciousness/sigils`, { body, headers: key ? { 'idempotency-key': key } : {}, timeout: CLIENT_TIMEOUT_MS }));

async function timed(fn) {
  const start = Date.now();
  try {
    const r = await fn();
    return { ...r, ms: Date.now() - start };
  } catch (err) {
    return { status: 0, error: err.code || err.message, headers: {}, ms: Date.now() - start };
  }
}

async function scrape() {
  const text = (await request('GET', `${base}/metrics`)).body;
  const value = (name) => Number(new RegExp(`^${name}\\{name="dnastore"\\} (\\S+)$`, 'm').exec(text)?.[1]);
  return { state: value('dnastore_circuit_state'), trips: value('dnastore_circuit_trips_total') };
}

const breakerState = async () => (await request('GET', `${base}/readyz`)).json.breakers.dnastore.state;

// A probe request per poll: the breaker only leaves half-open when a call goes through it.
const waitForState = (state, what) =>
  waitFor(
    async () => {
      await get('/api/consciousness/sigils');
      return (await breakerState()) === state;
    },
    { timeoutMs: 10000, intervalMs: 150, what },
  );

// What each answer looked like, in a shape that prints well when an expectation fails.
function kindOf(r) {
  const src = r.headers['x-fallback-source'];
  if (r.status === 200 && src === 'cache' && r.headers['x-fallback-age-ms'] !== undefined) return 'lkg';
  if (r.status === 200 && !src) return 'live';
  if (r.status === 503 && src === 'none' && Number(r.headers['retry-after']) >= 1) return '503-retry-after';
  return `unexpected ${r.status || r.error} ${src ?? ''}`;
}

// Reads that must stay bounded whatever DNAStore does: cached list, cached sigils, uncached sigil.
async function burstOfReads(rounds) {
  const paths = ['/api/consciousness/sigils', ...warmIds.map((id) => `/api/consciousness/sigils/${id}`), '/api/consciousness/sigils/sig-never-read'];
  const out = [];
  for (let i = 0; i < rounds; i++) out.push(...(await Promise.all(paths.map(get))));
  return out;
}

const startApi = async (env) => {
  const port = await freePort();
  const proc = spawnNode({
    script: path.join(__dirname, '..', '..', 'examples', 'sigil-api', 'sigil-api.cjs'),
    env: { ...API_ENV, PORT: String(port), DNASTORE_URL: store.url, ...env },
    isReady: (rec) => rec.msg === 'sigil-api listening',
  });
  await proc.ready;
  return [proc, `http://127.0.0.1:${port}`];
};

beforeAll(async () => {
  store = await startDnastore();
  outboxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sigil-api-outbox-'));
  [api, base] = await startApi({ DNASTORE_OUTBOX_DIR: outboxDir });
  [apiNoOutbox, baseNoOutbox] = await startApi({ DNASTORE_OUTBOX: 'off' });
  // Warm the last-known-good cache: create sigils, read each and the list once.
  for (let i = 0; i < 3; i++) {
    const r = await post({ name: `warm-${i}` });
    if (r.status !== 201) throw new Error(`warm-up POST failed: ${r.status} ${r.body}`);
    warmIds.push(r.json.id);
    await get(`/api/consciousness/sigils/${r.json.id}`);
  }
  await get('/api/consciousness/sigils');
});

afterAll(async () => {
  await Promise.all([api && stopProcess(api), apiNoOutbox && stopProcess(apiNoOutbox), store && store.close()]);
  if (outboxDir) fs.rmSync(outboxDir, { recursive: true, force: true });
});

test('a live POST is answered 201 with the Location of the stored sigil', async () => {
  const r = await post({ name: 'live' }, { key: 'live-key' });
  expect({ status: r.status, location: r.headers.location }).toEqual({ status: 201, location: `/api/consciousness/sigils/${r.json.id}` });
});

describe('DNAStore outage (process stopped)', () => {
  let outage;

  test('every API request is answered within its deadline, with a fallback (LKG 200 + header, or 503)', async () => {
    expect(await scrape()).toEqual({ state: 0, trips: 0 });
    await store.stop();
    outage = await burstOfReads(8);
    const slow = outage.filter((r) => r.ms > DEADLINE_MS + SLACK_MS).map((r) => r.ms);
    const kinds = outage.map(kindOf);
    const expected = outage.map((_r, i) => (i % (warmIds.length + 2) === warmIds.length + 1 ? '503-retry-after' : 'lkg'));
    expect({ slow, kinds }).toEqual({ slow: [], kinds: expected });
  });

  test('dnastore_circuit_trips_total rose and dnastore_circuit_state is 1 (open)', async () => {
    // Between probes the reset timeout can move the breaker to half-open (2); a probe
    // during the outage sends it straight back to open.
    const m = await waitFor(
      async () => {
        await get('/api/consciousness/sigils');
        const s = await scrape();
        return s.state === 1 ? s : null;
      },
      { timeoutMs: 5000, what: 'dnastore_circuit_state 1' },
    );
    expect(m.trips).toBeGreaterThanOrEqual(1);
  });

  test('POST during the outage is stored in the outbox: 202 + Location, whose GET says queued', async () => {
    // With the client's key, without one (the outbox generates it), and one DNAStore will refuse.
    for (const [body, key] of [[{ name: 'during-outage' }, 'outage-key-1'], [{ name: 'during-outage, no key' }], [{ glyph: 'no name' }, 'outage-key-refused']]) {
      const r = await post(body, { key });
      expect({ status: r.status, queued: r.json?.queued, location: r.headers.location, key: r.headers['idempotency-key'] }).toEqual({
        status: 202,
        queued: true,
        location: `/api/consciousness/writes/${r.json?.id}`,
        key: key ?? expect.stringMatching(/^[0-9a-f-]{36}$/),
      });
      queued.push({ key: r.json.idempotencyKey, location: r.headers.location, name: body.name });
    }
    const status = await get(queued[0].location);
    expect({ status: status.status, body: status.json }).toEqual({
      status: 200,
      body: expect.objectContaining({ id: expect.any(String), state: 'queued', idempotencyKey: 'outage-key-1' }),
    });
  });

  test('with the outbox off (DNASTORE_OUTBOX=off) a POST gets 503 + Retry-After and says the sigil was NOT stored', async () => {
    // Trip this API's breaker too, so the write is refused without reaching the network.
    await waitFor(async () => (await post({ name: 'no-outbox' }, { to: baseNoOutbox })).json?.code === 'EOPENBREAKER', { timeoutMs: 5000, intervalMs: 50, what: 'the second API to open' });
    const r = await post({ name: 'during-outage, no outbox' }, { to: baseNoOutbox });
    expect({ status: r.status, retryAfter: Number(r.headers['retry-after']) >= 1, stored: r.json?.stored }).toEqual({
      status: 503,
      retryAfter: true,
      stored: false,
    });
  });

  test('the breaker closes after DNAStore returns', async () => {
    await store.start();
    await waitForState('closed', 'the breaker to close after recovery');
    const r = await get('/api/consciousness/sigils');
    expect({ state: await breakerState(), kind: kindOf(r) }).toEqual({ state: 'closed', kind: 'live' });
  });

  test('after recovery each queued write is delivered once: Location says delivered, DNAStore holds it once with its key', async () => {
    const [keyed, unkeyed, refused] = queued;
    const delivered = await waitFor(
      async () => {
        const all = await Promise.all([keyed, unkeyed].map((q) => get(q.location)));
        return all.every((s) => s.json?.state === 'delivered') && all.map((s) => s.json);
      },
      { timeoutMs: 10000, intervalMs: 100, what: 'the queued writes to be delivered' },
    );
    expect(delivered.map((d) => ({ state: d.state, status: d.status, key: d.idempotencyKey }))).toEqual([
      { state: 'delivered', status: 201, key: keyed.key },
      { state: 'delivered', status: 201, key: unkeyed.key },
    ]);
    const held = (await store.sigils()).sigils;
    // DNAStore's answer reached the status: the client learns its sigil's id.
    for (const d of delivered) expect(held.map((r) => r.sigil.id)).toContain(d.sigil.id);
    for (const q of [keyed, unkeyed]) {
      expect({ name: q.name, keys: held.filter((r) => r.sigil.name === q.name).map((r) => r.idempotencyKey) }).toEqual({ name: q.name, keys: [q.key] });
    }
    // DNAStore refused the nameless sigil (422): dead-lettered with DNAStore's status, never stored.
    const dead = await waitFor(
      async () => {
        const s = await get(refused.location);
        return s.json?.state === 'dead_letter' && s.json;
      },
      { timeoutMs: 10000, what: 'the dead letter' },
    );
    expect(dead).toEqual(expect.objectContaining({ state: 'dead_letter', reason: 'rejected', status: 422, idempotencyKey: refused.key }));
    expect(held.filter((r) => r.idempotencyKey === refused.key)).toEqual([]);
    // Nothing left, and /readyz reports the outbox's counts.
    const ready = (await request('GET', `${base}/readyz`)).json.breakers.dnastore.outbox;
    expect(ready).toEqual(expect.objectContaining({ entries: 0, deadLetters: 1, enqueued: 3, delivered: 2, deadLettered: 1 }));
    expect((await get('/api/consciousness/writes/no-such-write')).status).toBe(404);
  });

  test('the log has the outbox delivery run: started, then drained with its counts', () => {
    const runs = api.lines.filter((l) => /^DNAStore outbox /.test(l.msg || '')).map((l) => ({ phase: l.phase, level: l.level }));
    expect(runs[0]).toEqual({ phase: 'started', level: 30 });
    expect(api.lines.find((l) => l.phase === 'drained')).toEqual(expect.objectContaining({ level: 30, queued: 0, delivered: 2, deadLettered: 1 }));
  });

  test('the log has open (warn), halfOpen and close (info) lines', () => {
    const transitions = api.lines
      .filter((l) => /^DNAStore circuit breaker /.test(l.msg || ''))
      .map((l) => `${l.level === 40 ? 'warn' : l.level === 30 ? 'info' : l.level} ${l.msg.replace(/ \(.*$/, '')}`);
    expect(new Set(transitions)).toEqual(
      new Set(['warn DNAStore circuit breaker OPEN', 'info DNAStore circuit breaker HALF-OPEN', 'info DNAStore circuit breaker CLOSED']),
    );
  });
});

describe('slow upstreams: latency stays bounded by the deadline', () => {
  afterEach(async () => {
    await store.setMode('up');
    await waitForState('closed', 'the breaker to close again');
  });

  test.each([
    ['hang', {}],
    ['slowbody', { ms: 5000 }],
  ])('%s mode', async (mode, params) => {
    expect(await breakerState()).toBe('closed');
    await store.resetStats();
    await store.setMode(mode, params);
    const replies = await burstOfReads(3);
    const reached = (await store.stats()).byMode[mode] ?? 0;
    const slow = replies.filter((r) => r.ms > DEADLINE_MS + SLACK_MS).map((r) => r.ms);
    const unanswered = replies.map(kindOf).filter((k) => k !== 'lkg' && k !== '503-retry-after');
    // `reached` proves DNAStore really got (and stalled) calls: the bound is not just a fast open circuit.
    expect({ slow, unanswered, reachedDnastore: reached > 0 }).toEqual({ slow: [], unanswered: [], reachedDnastore: true });
  });
});
