'use strict';

const { IMPLS, factory } = require('./impls');

const make = factory();

const notFound = () => {
  const e = new Error('not found');
  e.status = 404;
  return Promise.reject(e);
};

describe.each(IMPLS)('%s: errorFilter', (impl, Impl) => {
  test('a filtered error rejects, emits success, never opens it and skips the fallback', async () => {
    const seen = [];
    const b = make(Impl, notFound, { errorFilter: (err, id) => err.status === 404 && id === 'x', resetTimeout: 10_000 });
    b.fallback(() => 'fb');
    b.on('success', (r) => seen.push(['success', r.message]));
    b.on('failure', () => seen.push(['failure']));
    for (let i = 0; i < 3; i++) await expect(b.fire('x')).rejects.toMatchObject({ status: 404 });
    expect(b.closed).toBe(true);
    expect(seen).toEqual([['success', 'not found'], ['success', 'not found'], ['success', 'not found']]);
    expect(b.stats).toMatchObject({ successes: 3, failures: 0, fallbacks: 0 });
  });

  test('an error the filter does not accept is a failure', async () => {
    const b = make(Impl, notFound, { errorFilter: (err, id) => id === 'x', resetTimeout: 10_000 });
    b.fallback(() => 'fb');
    await expect(b.fire('y')).resolves.toBe('fb');
    expect(b.opened).toBe(true);
  });
});
