'use strict';

// `dnastore-breaker circuit` against a real redis-server: status, open, close, disable and
// enable reach a replica running with the fleet circuit on (a breaker in this process);
// a command without the service's signing secret changes nothing; a replica's own open()
// is the fleet's; the Redis URL and the name are checked as createBreaker checks them;
// usage errors exit 2.

const { createBreaker } = require('..');
const { cli } = require('./helpers/cli');
const { eventually, uniqueName } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis } = require('./helpers/redis');

const describeRedis = describeRedisIn('cli-circuit.test.js');
const SECRET = 'circuit-cli-secret';

describeRedis('circuit commands on a fleet', () => {
  let redis;
  const breakers = [];

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterEach(() => {
    for (const b of breakers.splice(0)) b.shutdown();
  });

  afterAll(async () => {
    if (redis) await redis.stop();
  });

  async function replica(name) {
    const b = createBreaker({ name, baseUrl: 'http://127.0.0.1:9', redisUrl: redis.url, fleetCircuit: 'on', signingSecret: SECRET, logger: false, env: {} });
    breakers.push(b);
    await eventually(() => b.stats().fleet.connected, 5000);
    return b;
  }

  const run = (op, name, env = { DNASTORE_LKG_SECRET: SECRET }) => cli(['circuit', op, '--name', name, '--redis', redis.url, '--json'], { env });

  test('open, status, disable, close, enable: every replica follows; --json and words', async () => {
    const name = uniqueName('cli-fleet');
    const b = await replica(name);
    const empty = await run('status', name);
    expect(empty.code).toBe(0);
    expect(empty.json).toMatchObject({ ok: true, name, state: 'closed', signed: true });
    expect(empty.json.command ?? null).toBeNull();
    expect(empty.json.generation ?? null).toBeNull();
    expect(empty.json.replicas).toBeGreaterThanOrEqual(1);

    const open = await run('open', name);
    expect(open.code).toBe(0);
    expect(open.json).toMatchObject({ ok: true, operation: 'open', state: 'forcedOpen', command: 'open', commandBy: expect.stringMatching(/^cli:/) });
    await eventually(() => b.state === 'forcedOpen', 5000);
    expect(await b.fire('/x')).toMatchObject({ fallback: true, code: 'EOPENBREAKER' });

    const words = await cli(['circuit', 'status', '--name', name, '--redis', redis.url], { env: { DNASTORE_LKG_SECRET: SECRET } });
    expect(words.code).toBe(0);
    expect(words.stdout).toContain(`breaker ${name} at ${redis.url}/0: forcedOpen`);
    expect(words.stdout).toContain('latest command: open by cli:');

    expect((await run('disable', name)).json).toMatchObject({ state: 'disabled' });
    await eventually(() => b.state === 'disabled', 5000);
    expect((await run('close', name)).json).toMatchObject({ state: 'closed', command: 'close' });
    await eventually(() => b.state === 'closed', 5000);
    await run('disable', name);
    await eventually(() => b.state === 'disabled', 5000);
    expect((await run('enable', name)).code).toBe(0);
    await eventually(() => b.state === 'closed', 5000);
  });

  test("a replica's open() is the fleet's; a command without the secret changes nothing", async () => {
    const name = uniqueName('cli-fleet');
    const b = await replica(name);
    const events = [];
    b.on('fleet', (e) => events.push(e));
    expect(b.open()).toBe(true);
    await eventually(async () => (await run('status', name)).json.command === 'open', 5000);
    const st = (await run('status', name)).json;
    expect(st).toMatchObject({ state: 'forcedOpen', commandBy: b.stats().fleet.replica });

    const unsigned = await run('close', name, {});
    expect(unsigned.code).toBe(0);
    expect(unsigned.json).toMatchObject({ signed: false });
    await eventually(() => events.some((e) => e.kind === 'rejected' && e.reason === 'signature'), 5000);
    expect(b.state).toBe('forcedOpen');
    // The operator's signed command replaces the forgery.
    await run('close', name);
    await eventually(() => b.state === 'closed', 5000);
  });
});

test('a Redis that does not answer: exit 1, nothing changed, no password shown', async () => {
  const r = await cli(['circuit', 'open', '--name', 'orders', '--redis', 'redis://user:circuit-pw@127.0.0.1:1/0', '--json'], { env: { DNASTORE_LKG_REDIS_CONNECT_TIMEOUT_MS: '300' } });
  expect(r.code).toBe(1);
  expect(r.json).toMatchObject({ ok: false, name: 'orders', operation: 'open', changed: false, error: { message: expect.stringContaining('nothing was changed') } });
  expect(`${r.stdout}${r.stderr}`).not.toContain('circuit-pw');
});

test('a bad Redis URL or name is a configuration failure; a bad command line exits 2', async () => {
  const bad = await cli(['circuit', 'status', '--redis', 'http://127.0.0.1:6379']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid option `redisUrl`');
  expect(bad.stderr).toContain('(given by --redis)');
  const name = await cli(['circuit', 'status', '--redis', 'redis://127.0.0.1:1', '--name', 'no spaces please']);
  expect(name.code).toBe(1);
  expect(name.stderr).toContain('(given by --name)');
  for (const args of [['circuit'], ['circuit', 'flip', '--redis', 'redis://127.0.0.1:1'], ['circuit', 'status'], ['circuit', 'status', 'x', '--redis', 'redis://127.0.0.1:1']]) {
    const r = await cli(args);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
    expect(r.stderr).toContain('Usage: dnastore-breaker circuit');
  }
});
