'use strict';

const { IMPLS, factory, sleep } = require('./impls');

const make = factory();

describe.each(IMPLS)('%s: cache and coalesce', (impl, Impl) => {
  test('cache: the first result answers every later call with the same key (opossum semantics)', async () => {
    let n = 0;
    const b = make(Impl, async (k) => `${k}:${++n}`, { cache: true });
    const events = [];
    b.on('cacheHit', () => events.push('hit'));
    b.on('cacheMiss', () => events.push('miss'));
    await expect(b.fire('a')).resolves.toBe('a:1');
    await expect(b.fire('a')).resolves.toBe('a:1');
    await expect(b.fire('b')).resolves.toBe('b:2');
    expect(events).toEqual(['miss', 'hit', 'miss']);
    expect(b.stats).toMatchObject({ cacheHits: 1, cacheMisses: 2, fires: 3 });
    b.clearCache();
    await expect(b.fire('a')).resolves.toBe('a:3');
  });

  test('cacheTTL expires entries; cacheGetKey picks the key; cacheSize evicts the oldest', async () => {
    let n = 0;
    const b = make(Impl, async (k) => `${k.id}:${++n}`, { cache: true, cacheTTL: 20, cacheGetKey: (k) => k.id });
    await b.fire({ id: 'a', x: 1 });
    await expect(b.fire({ id: 'a', x: 2 })).resolves.toBe('a:1');
    await sleep(40);
    await expect(b.fire({ id: 'a' })).resolves.toBe('a:2');
    const small = make(Impl, async (k) => `${k}:${++n}`, { cache: true, cacheSize: 1 });
    const a1 = await small.fire('a');
    await small.fire('b');
    await expect(small.fire('a')).resolves.not.toBe(a1);
  });

  test('coalesce: concurrent calls with the same key share one action call', async () => {
    let calls = 0;
    const b = make(Impl, (k) => sleep(20).then(() => `${k}:${++calls}`), { coalesce: true });
    const hits = [];
    b.on('coalesceCacheHit', () => hits.push('hit'));
    const all = await Promise.all([b.fire('k'), b.fire('k'), b.fire('j')]);
    expect(all).toEqual(['k:1', 'k:1', 'j:2']);
    expect(hits).toEqual(['hit']);
    expect(b.stats.coalesceCacheHits).toBe(1);
  });

  test('coalesceResetOn: error drops a failed call so the next one retries', async () => {
    let calls = 0;
    const b = make(Impl, () => sleep(5).then(() => Promise.reject(new Error(`e${++calls}`))), { coalesce: true, coalesceResetOn: ['error'], volumeThreshold: 100 });
    await expect(b.fire('k')).rejects.toThrow('e1');
    await expect(b.fire('k')).rejects.toThrow('e2');
  });
});
