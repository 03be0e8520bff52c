'use strict';

// Defects an adversarial review found after the class landed, each checked on both
// implementations: opossum@9 is the expectation.

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { IMPLS, factory, sleep } = require('./impls');

const make = factory();
const ROOT = path.join(__dirname, '..', '..');
const requireOf = (name) => (name === 'opossum' ? "require('opossum')" : "require('./').CircuitBreaker");

describe.each(IMPLS)('%s', (name, Impl) => {
  // A faster path for calls without arguments looked the fallback's `call` up (a review of
  // that change caught it before it landed): opossum uses `apply`, so a Proxy or an own
  // `call` property must see the same.
  test('the fallback is invoked through apply, with or without call arguments', async () => {
    const b = make(Impl, async () => 1, { resetTimeout: 10_000 });
    b.open();
    const reads = [];
    const fb = function fallback(...a) {
      return a.length;
    };
    fb.call = () => 'own call property';
    b.fallback(new Proxy(fb, { get: (t, k, r) => (reads.push(String(k)), Reflect.get(t, k, r)) }));
    await expect(b.fire()).resolves.toBe(1);
    await expect(b.fire('x', 'y')).resolves.toBe(3);
    expect(reads.filter((k) => k === 'call' || k === 'apply')).toEqual(['apply', 'apply']);
  });

  test('an errorFilter that accepts ETIMEDOUT keeps timeouts from opening the circuit', async () => {
    const b = make(Impl, () => sleep(200), { timeout: 20, volumeThreshold: 3, errorThresholdPercentage: 50, errorFilter: (e) => e.code === 'ETIMEDOUT' });
    for (let i = 0; i < 5; i++) await b.fire().catch(() => {});
    expect({ opened: b.opened, failures: b.stats.failures, timeouts: b.stats.timeouts }).toEqual({ opened: false, failures: 0, timeouts: 5 });
  });

  test('the process exits once its last call settled: no timeout timer keeps it alive', () => {
    const src = `const CB = ${requireOf(name)}; const t0 = Date.now();
      new CB(async () => 1, { timeout: 4000, logger: false }).fire();
      process.on('exit', () => console.log(Date.now() - t0));`;
    const r = spawnSync(process.execPath, ['-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
    expect(Number(r.stdout.trim())).toBeLessThan(1000);
  });

  test("a listener added right after fire() sees a plain-value action's 'success'", async () => {
    const b = make(Impl, () => 42);
    const p = b.fire();
    let seen = false;
    b.on('success', () => {
      seen = true;
    });
    await expect(p).resolves.toBe(42);
    expect(seen).toBe(true);
  });

  test("a throwing 'success' listener rejects that call; the process lives", () => {
    const src = `const CB = ${requireOf(name)};
      const b = new CB(async () => 'ok', { logger: false });
      b.on('success', () => { throw new Error('listener'); });
      b.fire().then((v) => console.log('resolved', v), (e) => console.log('rejected', e.message))
        .then(() => new Promise((r) => setTimeout(r, 50))).then(() => { console.log('alive'); b.shutdown(); });`;
    const r = spawnSync(process.execPath, ['-e', src], { cwd: ROOT, encoding: 'utf8', timeout: 10000 });
    expect(r.stdout).toContain('rejected listener');
    expect(r.stdout).toContain('alive');
    expect(r.status).toBe(0);
  });
});

test('capacity given as a numeric string bounds the calls (README: numeric strings work in both APIs)', async () => {
  const { CircuitBreaker } = require('../..');
  const b = make(CircuitBreaker, () => sleep(50), { capacity: '2' });
  const r = await Promise.allSettled([b.fire(), b.fire(), b.fire()]);
  expect(r.map((x) => x.status === 'rejected' && x.reason.code)).toEqual([false, false, 'ESEMLOCKED']);
});

// A key function or cache that throws escaped fire() synchronously (a review after issue 26):
// opossum does the same (`get`, the key) or lets an unhandled rejection end the process
// (`set`); here the call settles with it, as docs/opossum.md "Differences" says.
describe('dnastore: a cache that throws', () => {
  const { CircuitBreaker } = require('../..');
  test('a throwing cacheGetKey or cacheTransport.get rejects the call, never throws out of fire()', async () => {
    const boom = new Error('key boom');
    const byKey = make(CircuitBreaker, async () => 1, {
      coalesce: true,
      cacheGetKey: () => {
        throw boom;
      },
    });
    let p;
    expect(() => {
      p = byKey.fire('a');
    }).not.toThrow();
    await expect(p).rejects.toBe(boom);
    const cacheTransport = {
      get: () => {
        throw new Error('get boom');
      },
      set: () => {},
      flush: () => {},
    };
    const byGet = make(CircuitBreaker, async () => 1, { cache: true, cacheTransport });
    expect(() => {
      p = byGet.fire('a');
    }).not.toThrow();
    await expect(p).rejects.toThrow('get boom');
    expect(byGet.stats.fires).toBe(1);
  });

  test('a throwing cacheTransport.set leaves the call resolved and no unhandled rejection', async () => {
    const unhandled = [];
    const on = (e) => unhandled.push(e);
    process.on('unhandledRejection', on);
    try {
      const cacheTransport = {
        get: () => undefined,
        set: () => {
          throw new Error('set boom');
        },
        flush: () => {},
      };
      const b = make(CircuitBreaker, async () => 7, { cache: true, cacheTransport });
      await expect(b.fire('a')).resolves.toBe(7);
      await sleep(20);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', on);
    }
  });
});
