'use strict';

// `dnastore-breaker circuit`: this version has no fleet circuit (issue 28), so status says
// no fleet circuit state exists and the controls refuse, exit 1, saying what they need;
// the Redis URL and the name are checked as createBreaker checks them; usage errors exit 2.

const { cli } = require('./helpers/cli');

const REDIS = 'redis://user:circuit-pw@127.0.0.1:6399/0';

test('status: no fleet circuit state exists (exit 1), in words and in --json, without the password', async () => {
  const r = await cli(['circuit', 'status', '--name', 'orders', '--redis', REDIS]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('no fleet circuit state exists for breaker orders at redis://***@127.0.0.1:6399/0');
  expect(r.stderr).toContain("fleetCircuit: 'on'");
  const j = await cli(['circuit', 'status', '--name', 'orders', '--redis', REDIS, '--json']);
  expect(j.code).toBe(1);
  expect(j.json).toMatchObject({ ok: false, name: 'orders', redis: 'redis://***@127.0.0.1:6399/0', state: null, error: { message: expect.stringContaining('no fleet circuit state') } });
  for (const x of [r, j]) expect(`${x.stdout}${x.stderr}`).not.toContain('circuit-pw');
});

test.each(['open', 'close', 'disable', 'enable'])('%s refuses: it needs the fleet circuit', async (op) => {
  const r = await cli(['circuit', op, '--redis', 'redis://127.0.0.1:6399', '--json']);
  expect(r.code).toBe(1);
  expect(r.json).toMatchObject({ ok: false, name: 'dnastore', operation: op });
  expect(r.stderr).toContain(`circuit ${op} needs the fleet circuit (fleetCircuit: 'on', issue 28)`);
  expect(r.stderr).toContain('nothing was changed');
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
