'use strict';

// Crash safety of the outbox, with real processes and SIGKILL (no destructor, no flush):
// a process queues durable writes and is killed at a random point; a second one starts
// delivering and is killed mid-delivery; a third delivers the rest. Every write that was
// acknowledged (answered queued) must reach the upstream, which stores each
// Idempotency-Key once (as DNAStore does): nothing lost, nothing stored twice. Several
// rounds, each with its own kill points.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startUpstream, json } = require('./helpers/upstream');
const { writer } = require('./helpers/writer');

const ROUNDS = Number(process.env.OUTBOX_CRASH_ROUNDS || 6);

let up;
let stored; // key -> stores (must end at 1 for every acknowledged key)
let attempts; // key -> POSTs received

beforeAll(async () => {
  up = await startUpstream((req) => req.socket.destroy());
});

afterAll(() => up.stop());

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test(`${ROUNDS} rounds of SIGKILL while queueing and while delivering: every acknowledged write stored exactly once`, async () => {
  const summary = [];
  for (let round = 0; round < ROUNDS; round++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-crash-'));
    const base = { dir, name: 'crash', baseUrl: up.url, run: `r${round}`, n: 2000 };
    stored = new Map();
    attempts = new Map();
    up.set((req) => req.socket.destroy()); // DNAStore down while writes are queued
    try {
      // 1. Queue, killed at a random point (some writes acknowledged, maybe one mid-sync).
      const q = writer({ ...base, phase: 'queue' });
      const killAt = 20 + Math.floor(Math.random() * 600);
      await q.waitFor((l) => l.length > killAt, 20_000);
      q.kill();
      await q.exited;
      const acked = q.lines.filter((l) => l.startsWith('A ')).map((l) => l.slice(2));

      // DNAStore back, slowly, storing each key once.
      up.set((req, res, hit) => {
        const key = hit.headers['idempotency-key'];
        attempts.set(key, (attempts.get(key) || 0) + 1);
        setTimeout(() => {
          const first = !stored.has(key);
          if (first) stored.set(key, 1);
          json(res, first ? 201 : 200, { key });
        }, 5);
      });

      // 2. Deliver, killed mid-delivery.
      const d1 = writer({ ...base, phase: 'deliver' });
      const deliverKillAt = 1 + Math.floor(Math.random() * 15);
      for (let t = 0; stored.size < deliverKillAt && t < 1000; t++) await sleep(5);
      d1.kill();
      await d1.exited;
      const deliveredBeforeKill = stored.size;

      // 3. Deliver the rest.
      const d2 = writer({ ...base, phase: 'deliver' });
      await d2.waitFor((l) => l.includes('EMPTY'), 30_000);
      await d2.exited;

      const lost = acked.filter((k) => !stored.has(k));
      const twice = [...stored.values()].filter((n) => n !== 1).length;
      const keyless = attempts.get(undefined) || 0;
      summary.push({ round, acked: acked.length, deliveredBeforeKill, stored: stored.size, resent: [...attempts.values()].filter((n) => n > 1).length });
      expect({ round, lost, twice, keyless }).toEqual({ round, lost: [], twice: 0, keyless: 0 });
      expect(acked.length).toBeGreaterThan(20);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  process.stderr.write(`outbox-crash: ${JSON.stringify(summary)}\n`);
}, 120_000);
