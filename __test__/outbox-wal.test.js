'use strict';

// The embedded outbox after a crash whose WAL is then damaged or lost (issue 25): a writer
// process queues durable writes and is killed with SIGKILL mid-stream, so the latest
// acknowledged writes are in the -wal only; copies of its directory are then damaged as
// operators and disks do (WAL truncated to half, garbled, deleted; the file emptied beside
// its WAL) and a new process opens each. Every acknowledged write is delivered, or the
// outbox refuses to start (ECONFIG naming the file) and leaves the file and its WAL byte for
// byte as they were: never a silent loss. The intact copy must deliver everything. The
// core's tests (crates/core/src/outbox/sqlite/tests_wal.rs) check each case exactly.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startUpstream, json } = require('./helpers/upstream');
const { writer } = require('./helpers/writer');

let up;
let stored; // idempotency keys DNAStore stored

beforeAll(async () => {
  up = await startUpstream((req) => req.socket.destroy());
});

afterAll(() => up.stop());

// A file's digest, or null when it is absent (Jest compares megabyte Buffers slowly).
const digest = (p) => (fs.existsSync(p) ? crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex') : null);

const DAMAGE = {
  intact: () => {},
  'WAL truncated to half': (db) => fs.truncateSync(`${db}-wal`, Math.floor(fs.statSync(`${db}-wal`).size / 2)),
  'WAL garbled': (db) => {
    const wal = fs.readFileSync(`${db}-wal`);
    for (let i = 0; i < Math.min(8192, wal.length); i++) wal[i] = (i * 31) ^ 0x5a;
    fs.writeFileSync(`${db}-wal`, wal);
  },
  'WAL deleted': (db) => fs.rmSync(`${db}-wal`),
  'file emptied beside its WAL': (db) => fs.truncateSync(db, 0),
};

test('a WAL truncated, garbled or deleted, or an empty file beside it: delivered, or refused with the evidence intact', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-wal-'));
  const name = 'wal';
  try {
    // 1. Queue while DNAStore is down; SIGKILL in the middle of the stream.
    const crashed = path.join(root, 'crashed');
    const q = writer({ dir: crashed, name, baseUrl: up.url, run: 'w', n: 5000, phase: 'queue' });
    const killAt = 150 + Math.floor(Math.random() * 250);
    await q.waitFor((l) => l.length > killAt, 30_000);
    q.kill();
    await q.exited;
    const acked = q.lines.filter((l) => l.startsWith('A ')).map((l) => l.slice(2));
    expect(q.lines).not.toContain('DONE');

    up.set((req, res, hit) => {
      stored.add(hit.headers['idempotency-key']);
      json(res, 201, {});
    });
    const summary = {};
    for (const [label, damage] of Object.entries(DAMAGE)) {
      const dir = path.join(root, label.replace(/\W+/g, '-'));
      fs.cpSync(crashed, dir, { recursive: true });
      const db = path.join(dir, `${name}.outbox.sqlite`);
      damage(db);
      const before = [digest(db), digest(`${db}-wal`)];
      stored = new Set();
      const d = writer({ dir, name, baseUrl: up.url, run: 'w', n: 0, phase: 'deliver' });
      await d.waitFor((l) => l.some((x) => x === 'EMPTY' || x.startsWith('REFUSED ')), 30_000);
      await d.exited;
      const refusal = d.lines.find((x) => x.startsWith('REFUSED '));
      const lost = acked.filter((k) => !stored.has(k));
      summary[label] = refusal ? 'refused' : `delivered, ${lost.length} lost`;
      if (refusal) {
        expect({ label, refusal }).toEqual({ label, refusal: expect.stringMatching(/^REFUSED ECONFIG .*outbox cannot be opened/) });
        expect(refusal).toContain(db);
        expect({ label, file: digest(db), wal: digest(`${db}-wal`) }).toEqual({ label, file: before[0], wal: before[1] });
      } else {
        expect({ label, lost }).toEqual({ label, lost: [] });
      }
    }
    process.stderr.write(`outbox-wal: ${acked.length} acknowledged; ${JSON.stringify(summary)}\n`);
    expect(summary.intact).toBe('delivered, 0 lost');
    // The acknowledged-writes record says more than an empty file holds, whatever the timing.
    expect(summary['file emptied beside its WAL']).toBe('refused');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}, 120_000);
