'use strict';

// Issue 25, item 5: options are the caller's objects, and reading them may throw anything
// (a getter, a Proxy trap; null and undefined included). createBreaker() and `new
// CircuitBreaker()` turn such a throw into ECONFIG naming the option, with the thrown value
// as `cause` (fire() does the same with EINVALID: hardening.test.js); before, the caller's
// value itself came out (null, an Error without a code), or EINTERNAL for `env`.

const { createBreaker, CircuitBreaker } = require('..');
const { uniqueName } = require('./helpers/upstream');

const VALUES = [null, undefined, new Error('from a getter'), 'a string', 0];

function thrownBy(fn) {
  try {
    const made = fn();
    made.shutdown();
  } catch (err) {
    return { err };
  }
  return null;
}

const makers = {
  createBreaker: (opts) => createBreaker({ name: uniqueName('cfg-throw'), logger: false, ...opts }),
  createBreakerRaw: (opts) => createBreaker(opts),
  CircuitBreaker: (opts) => new CircuitBreaker(async () => 1, opts),
};

function expectConfigError(r, value, message) {
  expect(r).not.toBeNull();
  expect(r.err).toBeInstanceOf(Error);
  expect(r.err.code).toBe('ECONFIG');
  expect(r.err).toHaveProperty('cause');
  expect(r.err.cause).toBe(value);
  expect(r.err.message).toMatch(message);
}

describe.each([['createBreaker'], ['CircuitBreaker']])('%s', (which) => {
  const raw = which === 'createBreaker' ? makers.createBreakerRaw : makers.CircuitBreaker;

  test.each(VALUES.map((v) => [String(v), v]))('a getter throwing %s is ECONFIG naming the option, with the value as cause', (_, value) => {
    const opts = Object.defineProperty({ name: uniqueName('cfg-throw'), logger: false }, 'timeout', {
      enumerable: true,
      get() {
        throw value;
      },
    });
    expectConfigError(thrownBy(() => raw(opts)), value, /invalid option `timeout`: reading it threw/);
  });

  test('a getter on `fallback` or `logger` itself', () => {
    for (const key of ['fallback', 'logger']) {
      const opts = Object.defineProperty({ name: uniqueName('cfg-throw') }, key, {
        enumerable: true,
        get() {
          throw null;
        },
      });
      expectConfigError(thrownBy(() => raw(opts)), null, new RegExp(`invalid option \`${key}\``));
    }
  });

  test('a logger whose methods throw when read', () => {
    const logger = Object.defineProperty({ info() {}, error() {} }, 'warn', {
      get() {
        throw undefined;
      },
    });
    expectConfigError(thrownBy(() => raw({ name: uniqueName('cfg-throw'), logger })), undefined, /invalid option `logger`: reading its warn threw/);
  });

  test.each(['get', 'ownKeys', 'getOwnPropertyDescriptor'])('a Proxy whose %s trap throws', (trap) => {
    const boom = new Error(`${trap} trap`);
    const opts = new Proxy(
      { name: uniqueName('cfg-throw'), logger: false },
      {
        [trap]() {
          throw boom;
        },
      },
    );
    const r = thrownBy(() => raw(opts));
    expectConfigError(r, boom, trap === 'ownKeys' ? /reading the options object threw: ownKeys trap/ : /invalid option `name`: reading it threw: .* trap/);
  });

  test('a Proxy whose has trap throws is never asked: the options are read by keys and values', () => {
    const opts = new Proxy(
      { name: uniqueName('cfg-throw'), logger: false },
      {
        has() {
          throw null;
        },
      },
    );
    expect(thrownBy(() => raw(opts))).toBeNull();
  });

  test('an array option read element by element throws', () => {
    // A header list for createBreaker, opossum's coalesceResetOn for CircuitBreaker.
    const key = which === 'createBreaker' ? 'varyHeaders' : 'coalesceResetOn';
    const list = new Proxy(['x'], {
      get(t, p) {
        if (p === '0') throw 'element';
        return Reflect.get(t, p);
      },
    });
    expectConfigError(thrownBy(() => raw({ name: uniqueName('cfg-throw'), logger: false, [key]: list })), 'element', new RegExp(`invalid option \`${key}\``));
  });
});

describe('createBreaker env', () => {
  test.each(VALUES.map((v) => [String(v), v]))('an env object whose getter throws %s', (_, value) => {
    const env = Object.defineProperty({}, 'DNASTORE_TIMEOUT_MS', {
      enumerable: true,
      get() {
        throw value;
      },
    });
    expectConfigError(thrownBy(() => makers.createBreaker({ env })), value, /invalid option `env`: reading it threw/);
  });

  test.each(['get', 'ownKeys', 'getOwnPropertyDescriptor'])('an env Proxy whose %s trap throws', (trap) => {
    const boom = new Error(`env ${trap}`);
    const env = new Proxy(
      { DNASTORE_TIMEOUT_MS: '100' },
      {
        [trap]() {
          throw boom;
        },
      },
    );
    expectConfigError(thrownBy(() => makers.createBreaker({ env })), boom, /invalid option `env`: reading it threw/);
  });

  test('a well-behaved env and options still work, and the options are read once', () => {
    let reads = 0;
    const opts = Object.defineProperty({ name: uniqueName('cfg-throw'), logger: false, env: { DNASTORE_TIMEOUT_MS: '1234' } }, 'maxAttempts', {
      enumerable: true,
      get() {
        reads += 1;
        return 2;
      },
    });
    const b = createBreaker(opts);
    try {
      expect(reads).toBe(1);
      expect(b.name).toBe(opts.name);
    } finally {
      b.shutdown();
    }
  });
});
