// k6 soak of the Sigil API at a constant arrival rate, mixing reads and writes.
// Run it through loadtest/run-soak.js, which starts the services and takes DNAStore
// down and up during the run. Alone (against a running API):
//
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=100 -e DURATION=60s loadtest/soak.js
//
// Reads pass when answered 200, live or from the last-known-good cache (X-Fallback-Source).
// Writes cannot be served from a cache: during an outage they get 503 + Retry-After. They
// are counted in write_failed / writes_rejected_503 and reported, never hidden or gated.

import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const RATE = Number(__ENV.RATE || 100);
const DURATION = __ENV.DURATION || '60s';
const DEADLINE_MS = Number(__ENV.DEADLINE_MS || 1500);
const WRITE_PERCENT = Number(__ENV.WRITE_PERCENT || 20);
const WARM = Number(__ENV.WARM_SIGILS || 20);

const readFailed = new Rate('read_failed');
const readFromCache = new Rate('read_served_from_cache');
const writeFailed = new Rate('write_failed');
const writesRejected503 = new Counter('writes_rejected_503');
const writesNotStored = new Counter('writes_not_stored');
const writesOutcomeUnknown = new Counter('writes_outcome_unknown');
const writesOtherErrors = new Counter('writes_other_errors');

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 5)),
      // Enough VUs to keep the rate even if every request took the whole deadline.
      maxVUs: Math.ceil((RATE * DEADLINE_MS) / 1000) + 20,
    },
  },
  thresholds: {
    read_failed: ['rate<0.01'],
    'http_req_duration{kind:read}': [`p(99)<${DEADLINE_MS}`],
    'http_req_duration{kind:write}': [`p(99)<${DEADLINE_MS}`],
    // Enough traffic really flowed (a run that sent nothing must not pass).
    iterations: [`count>=${Math.floor(RATE * 0.5)}`],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
  setupTimeout: '30s',
};

const PARAMS = { timeout: '10s' };

// Create sigils and read each (and the list) once, so reads during an outage have LKG.
export function setup() {
  const ids = [];
  for (let i = 0; i < WARM; i++) {
    const r = http.post(`${BASE}/api/consciousness/sigils`, JSON.stringify({ name: `warm-${i}`, glyph: '✶' }), {
      headers: { 'Content-Type': 'application/json' },
      tags: { kind: 'setup' },
    });
    if (r.status !== 201) throw new Error(`setup: POST answered ${r.status}: ${r.body}`);
    const id = r.json('id');
    ids.push(id);
    http.get(`${BASE}/api/consciousness/sigils/${id}`, { tags: { kind: 'setup' } });
  }
  http.get(`${BASE}/api/consciousness/sigils`, { tags: { kind: 'setup' } });
  return { ids };
}

export default function (data) {
  const n = Math.floor(Math.random() * 100);
  if (n < WRITE_PERCENT) return write();
  const url = n % 2 === 0
    ? `${BASE}/api/consciousness/sigils`
    : `${BASE}/api/consciousness/sigils/${data.ids[n % data.ids.length]}`;
  const r = http.get(url, { ...PARAMS, tags: { kind: 'read' } });
  const cached = r.status === 200 && r.headers['X-Fallback-Source'] === 'cache';
  readFailed.add(r.status !== 200);
  readFromCache.add(cached);
}

function write() {
  const key = `${__VU}-${__ITER}-${Date.now()}`;
  const r = http.post(`${BASE}/api/consciousness/sigils`, JSON.stringify({ name: `soak-${key}` }), {
    ...PARAMS,
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
    tags: { kind: 'write' },
  });
  writeFailed.add(r.status !== 201);
  if (r.status === 201) return;
  if (r.status === 503 && r.headers['Retry-After']) {
    writesRejected503.add(1);
    let stored;
    try {
      stored = r.json('stored');
    } catch (_e) {
      stored = undefined;
    }
    if (stored === false) writesNotStored.add(1);
    else writesOutcomeUnknown.add(1);
  } else {
    writesOtherErrors.add(1);
  }
}
