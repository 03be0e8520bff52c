// k6 soak of the Sigil API at a constant arrival rate, mixing reads and writes.
// Run it through loadtest/run-soak.js, which starts the services and takes DNAStore
// down and up during the run. Alone (against a running API):
//
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=100 -e DURATION=60s loadtest/soak.js
//
// Every request is gated (http_req_failed < 1 %). Reads pass when answered 200, live or from
// the last-known-good cache (X-Fallback-Source). Writes pass when answered 201 (stored live)
// or 202 (stored in the API's durable outbox, delivered later); a 503 fails them.
// Each write carries a unique Idempotency-Key (also in its body as `ref`) and is logged as
// one JSON line {"write": key, "status": n} to the console output: run-soak.js audits those
// answers against what DNAStore holds after the outbox drained.

import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const RATE = Number(__ENV.RATE || 100);
const DURATION = __ENV.DURATION || '60s';
const DEADLINE_MS = Number(__ENV.DEADLINE_MS || 1500);
const WRITE_PERCENT = Number(__ENV.WRITE_PERCENT || 20);
const WARM = Number(__ENV.WARM_SIGILS || 20);
// Makes keys unique across runs against the same DNAStore.
const RUN_ID = __ENV.RUN_ID || String(Date.now());

const readFailed = new Rate('read_failed');
const readFromCache = new Rate('read_served_from_cache');
const writeFailed = new Rate('write_failed');
const writesCreated = new Counter('writes_created_201');
const writesQueued = new Counter('writes_queued_202');
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
    // All requests: reads answered 200, writes answered 201 or 202 (the responseCallbacks).
    http_req_failed: ['rate<0.01'],
    read_failed: ['rate<0.01'],
    write_failed: ['rate<0.01'],
    'http_req_duration{kind:read}': [`p(99)<${DEADLINE_MS}`],
    'http_req_duration{kind:write}': [`p(99)<${DEADLINE_MS}`],
    // Enough traffic really flowed (a run that sent nothing must not pass).
    iterations: [`count>=${Math.floor(RATE * 0.5)}`],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(95)', 'p(99)', 'max'],
  setupTimeout: '30s',
};

const PARAMS = { timeout: '10s' };
const READ_OK = http.expectedStatuses(200);
const WRITE_OK = http.expectedStatuses(201, 202);

// Create sigils and read each (and the list) once, so reads during an outage have LKG.
export function setup() {
  const ids = [];
  for (let i = 0; i < WARM; i++) {
    const r = http.post(`${BASE}/api/consciousness/sigils`, JSON.stringify({ name: `warm-${i}`, glyph: '✶' }), {
      headers: { 'Content-Type': 'application/json' },
      tags: { kind: 'setup' },
      responseCallback: http.expectedStatuses(201),
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
  const r = http.get(url, { ...PARAMS, tags: { kind: 'read' }, responseCallback: READ_OK });
  const cached = r.status === 200 && r.headers['X-Fallback-Source'] === 'cache';
  readFailed.add(r.status !== 200);
  readFromCache.add(cached);
}

function write() {
  const key = `soak-${RUN_ID}-${__VU}-${__ITER}`;
  const r = http.post(`${BASE}/api/consciousness/sigils`, JSON.stringify({ name: key, ref: key }), {
    ...PARAMS,
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
    tags: { kind: 'write' },
    responseCallback: WRITE_OK,
  });
  // The ledger for the audit: what this client was told (0: no answer).
  console.log(JSON.stringify({ write: key, status: r.status }));
  writeFailed.add(r.status !== 201 && r.status !== 202);
  if (r.status === 201) return writesCreated.add(1);
  if (r.status === 202) return writesQueued.add(1);
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
