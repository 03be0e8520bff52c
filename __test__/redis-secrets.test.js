'use strict';

// Redis credentials never leave the addon: not in ECONFIG errors (options or environment),
// not in the redis event, the log line, or the metrics, whatever the URL form.

const { createBreaker, metrics } = require('..');
const { startUpstream, eventually, uniqueName } = require('./helpers/upstream');
const { describeRedis: describeRedisIn, startRedis } = require('./helpers/redis');

const describeRedis = describeRedisIn('redis-secrets.test.js');
const SECRET = 'hunter2-pw';
const USER = 'svc-dnastore';

test.each([
  ['redisUrl', `redis+sentinel://${USER}:${SECRET}@10.0.0.1:26379`, 'master'],
  ['redisUrl', `redis+cluster://${USER}:${SECRET}@a:7000/3`, 'database 0'],
  ['redisUrl', `http://${USER}:${SECRET}@cache:6379`, 'redis+sentinel://'],
  ['redisUrl', `redis://${USER}:${SECRET}@a,b`, 'one node'],
])('a bad %s is named without its credentials (case %#)', (option, url, says) => {
  let err;
  try {
    createBreaker({ name: uniqueName('secret'), logger: false, [option]: url });
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code: 'ECONFIG' });
  expect(err.message).toContain('redisUrl');
  expect(err.message).toContain(says);
  expect(err.message).not.toContain(SECRET);
  expect(err.message).not.toContain(USER);
});

test('the environment variable is named the same way', () => {
  const env = { DNASTORE_LKG_REDIS_URL: `redis+sentinel://:${SECRET}@h` };
  expect(() => createBreaker({ name: uniqueName('secret'), logger: false, env })).toThrow(/DNASTORE_LKG_REDIS_URL/);
  expect(() => createBreaker({ name: uniqueName('secret'), logger: false, env })).not.toThrow(new RegExp(SECRET));
});

describeRedis('a Redis that refuses the credentials', () => {
  let redis;
  let up;
  beforeAll(async () => {
    redis = await startRedis(['--requirepass', 'the-right-one']);
    up = await startUpstream();
  });
  afterAll(async () => {
    if (up) await up.stop().catch(() => {});
    if (redis) await redis.stop();
  });

  test('says so in the event and the log, without the user or the password anywhere', async () => {
    const logs = [];
    const logger = Object.fromEntries(['warn', 'info', 'error'].map((level) => [level, (fields, msg) => logs.push({ level, msg, ...fields })]));
    const name = uniqueName('secret');
    const b = createBreaker({ name, baseUrl: up.url, logger, redisUrl: `redis://${USER}:${SECRET}@127.0.0.1:${redis.port}`, signingSecret: 'k' });
    const events = [];
    b.on('redis', (e) => events.push(e));
    try {
      await b.fire('/api/sigils'); // a stored GET queues the first Redis write
      await eventually(() => events.length > 0, 5000);
      expect(events).toEqual([{ up: false, reason: expect.stringMatching(/authentication failed/i) }]);
      const seen = JSON.stringify({ events, logs, metrics: metrics() });
      expect(seen).not.toContain(SECRET);
      expect(seen).not.toContain(USER);
      expect(logs.filter((l) => l.msg.includes('Redis'))).toEqual([expect.objectContaining({ level: 'warn', up: false })]);
    } finally {
      b.shutdown();
    }
  });
});
