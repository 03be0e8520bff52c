'use strict';

// The fleet outbox's spill under SIGKILL, with real processes: DNAStore and Redis are both
// down while a process queues durable writes (each spilled to its file, then acknowledged)
// and is killed at a random point; Redis comes back; a second process on the same
// directory takes the file over, forwards it to Redis and is killed at a random point
// while forwarding and delivering (between Redis's acknowledgement and the local delete,
// sometimes); a third delivers the rest. Audit: every acknowledged write reaches the
// upstream (which stores each Idempotency-Key once, as DNAStore does), none is lost.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startUpstream, json, eventually, freePort, uniqueName } = require('./helpers/upstream');
const { describeRedis, startRedis } = require('./helpers/redis');
const { writer } = require('./helpers/writer');

const ROUNDS = Number(process.env.SPILL_CRASH_ROUNDS || 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describeRedis('spill-crash.test.js')('outbox spill under SIGKILL', () => {
  let up;
  beforeAll(async () => {
    up = await startUpstream((req) => req.socket.destroy());
  });
  afterAll(() => up.stop());

  test(`${ROUNDS} rounds: every acknowledged write spilled while Redis was down is delivered after kills while queueing and forwarding`, async () => {
    const summary = [];
    for (let round = 0; round < ROUNDS; round++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spill-crash-'));
      const port = await freePort();
      const base = { dir, name: uniqueName('spill-crash'), baseUrl: up.url, run: `s${round}`, n: 400, redis: `redis://127.0.0.1:${port}` };
      const stored = new Map();
      up.set((req) => req.socket.destroy()); // DNAStore down
      let redis;
      const procs = [];
      try {
        // 1. Redis and DNAStore down: writes are spilled and acknowledged; killed at random.
        const q = writer({ ...base, phase: 'queue' });
        procs.push(q);
        const killAt = 20 + Math.floor(Math.random() * 200);
        await q.waitFor((l) => l.length > killAt || l.includes('DONE'), 30_000);
        q.kill();
        await q.exited;
        const acked = q.lines.filter((l) => l.startsWith('A ')).map((l) => l.slice(2));

        // Redis back, DNAStore back (storing each key once).
        redis = await startRedis([], port);
        up.set((req, res, hit) => {
          const key = hit.headers['idempotency-key'];
          if (!stored.has(key)) stored.set(key, 0);
          stored.set(key, stored.get(key) + 1);
          json(res, 201, { key });
        });

        // 2. A process takes the spill file over, forwards and delivers; killed at random
        // once something reached the stream or the upstream.
        const d1 = writer({ ...base, phase: 'stay' });
        procs.push(d1);
        await d1.waitFor((l) => l.includes('OPEN'), 20_000);
        const stopAt = Math.floor(Math.random() * 60);
        for (let t = 0; t < 2000; t++) {
          const inStream = Number(redis.cli('XLEN', `dnastore:outbox:{${base.name}}:q`)) || 0;
          if (stored.size + inStream > stopAt) break;
          await sleep(2);
        }
        d1.kill();
        await d1.exited;
        const beforeKill = stored.size;

        // 3. Another process delivers the rest.
        const d2 = writer({ ...base, phase: 'stay' });
        procs.push(d2);
        let ok = true;
        try {
          await eventually(() => acked.every((k) => stored.has(k)), 30_000);
        } catch {
          ok = false;
        }
        d2.kill();
        await d2.exited;
        const lost = acked.filter((k) => !stored.has(k));
        if (lost.length) {
          process.stderr.write(`DEBUG d1=${JSON.stringify(d1.lines.slice(-5))} d2=${JSON.stringify(d2.lines.slice(-5))} files=${fs.readdirSync(dir)} xlen=${redis.cli('XLEN', `dnastore:outbox:{${base.name}}:q`)} dead=${redis.cli('XLEN', `dnastore:outbox:{${base.name}}:dead`)} keys=${redis.cli('KEYS', '*').split('\n').length} stored=${stored.size} acked=${acked.length}\n`);
        }
        summary.push({ round, acked: acked.length, beforeKill, stored: stored.size, twice: [...stored.values()].filter((n) => n > 1).length, ok });
        expect({ round, lost }).toEqual({ round, lost: [] });
        expect(acked.length).toBeGreaterThan(20);
      } finally {
        for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.kill();
        if (redis) await redis.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    process.stderr.write(`spill-crash: ${JSON.stringify(summary)}\n`);
  }, 180_000);
});
