'use strict';

// `dnastore-breaker circuit`: this command cannot read the fleet circuit (issue 28) yet, so
// status says where its state is shown (never that none exists: the library has it) and
// the controls (issue 30) refuse, exit 1, saying what they need;
// the Redis URL and the name are checked as createBreaker checks them; usage errors exit 2.

const { cli } = require('./helpers/cli');

const REDIS = 'redis://user:circuit-pw@127.0.0.1:6399/0';

test('status: where the fleet state is shown (exit 1), in words and in --json, without the password', async () => {
  const r = await cli(['circuit', 'status', '--name', 'orders', '--redis', REDIS]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('the fleet circuit state of breaker orders at redis://***@127.0.0.1:6399/0 cannot be read by this command yet');
  expect(r.stderr).toContain("fleetCircuit: 'on'");
  expect(r.stderr).toContain('stats().fleet');
  // The library has a fleet circuit (issue 28): the command never says otherwise.
  expect(r.stderr).not.toContain('no fleet circuit');
  const j = await cli(['circuit', 'status', '--name', 'orders', '--redis', REDIS, '--json']);
  expect(j.code).toBe(1);
  expect(j.json).toMatchObject({ ok: false, name: 'orders', redis: 'redis://***@127.0.0.1:6399/0', state: null, error: { message: expect.stringContaining('cannot be read by this command yet') } });
  for (const x of [r, j]) expect(`${x.stdout}${x.stderr}`).not.toContain('circuit-pw');
});

test.each(['open', 'close', 'disable', 'enable'])('%s refuses: it needs manual control (issue 30)', async (op) => {
  const r = await cli(['circuit', op, '--redis', 'redis://127.0.0.1:6399', '--json']);
  expect(r.code).toBe(1);
  expect(r.json).toMatchObject({ ok: false, name: 'dnastore', operation: op });
  expect(r.stderr).toContain(`circuit ${op} needs manual control of the fleet circuit (issue 30)`);
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
