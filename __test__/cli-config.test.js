'use strict';

// `dnastore-breaker config` as an operator runs it (the real command in a child process):
// the effective configuration from the environment or an --env-file, each value with its
// source; createBreaker's validation with createBreaker's messages, exit 1 naming the bad
// variable; secrets never printed; usage errors exit 2; --help everywhere.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createBreaker, optionNames } = require('..');
const { cli } = require('./helpers/cli');
const { pkiDir, makeCa, makeLeaf } = require('./helpers/certs');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-cli-config-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const setting = (doc, option) => doc.settings.find((s) => s.option === option);

// What createBreaker throws for these variables (the command must say the same).
function thrown(env, options = {}) {
  try {
    const b = createBreaker({ ...options, env, logger: false });
    b.shutdown();
  } catch (err) {
    return err;
  }
  throw new Error(`createBreaker accepted ${JSON.stringify(env)}`);
}

test('defaults: every option of the table with its variable, value and source', async () => {
  const r = await cli(['config', '--json']);
  expect(r.code).toBe(0);
  expect(r.json).toMatchObject({ ok: true, name: 'dnastore', from: { env: true }, unknown: [] });
  const options = r.json.settings.map((s) => s.option).filter(Boolean);
  expect(options.sort()).toEqual([...optionNames()].sort());
  expect(r.json.settings.every((s) => s.source === 'default')).toBe(true);
  expect(setting(r.json, 'timeout')).toEqual({ option: 'timeout', env: ['DNASTORE_TIMEOUT_MS'], value: 3000, unit: 'ms', source: 'default', from: null, redacted: false });
  expect(setting(r.json, 'baseUrl').value).toBe(null);
  expect(setting(r.json, 'coalesce').value).toBe(true);
  expect(r.json.settings.find((s) => s.option === null)).toMatchObject({ env: ['DNASTORE_TLS_INSECURE'], value: false });

  const t = await cli(['config']);
  expect(t.code).toBe(0);
  expect(t.stdout).toMatch(/^Breaker dnastore: configuration from the environment and the defaults \(valid\)/);
  expect(t.stdout).toMatch(/^OPTION +VARIABLE +VALUE +SOURCE$/m);
  expect(t.stdout).toMatch(/^timeout +DNASTORE_TIMEOUT_MS +3000 ms +default$/m);
  expect(t.stderr).toBe('');
});

test('values from the environment and --name, with their sources; unknown variables are warned about', async () => {
  const env = {
    DNASTORE_TIMEOUT_MS: ' 900 ',
    DNASTORE_COALESCE: 'no',
    DNASTORE_OUTBOX_HEADERS: 'X-Trace, accept',
    DNASTORE_BREAKER_NAME: 'from-env',
    DNASTORE_TIMOUT_MS: '5',
  };
  const r = await cli(['config', '--json', '--name', 'orders'], { env });
  expect(r.code).toBe(0);
  expect(r.json.name).toBe('orders');
  expect(setting(r.json, 'name')).toMatchObject({ value: 'orders', source: 'option', from: 'name' });
  expect(setting(r.json, 'timeout')).toMatchObject({ value: 900, source: 'env', from: 'DNASTORE_TIMEOUT_MS' });
  expect(setting(r.json, 'coalesce')).toMatchObject({ value: false, source: 'env' });
  expect(setting(r.json, 'outboxHeaders')).toMatchObject({ value: ['x-trace', 'accept'], source: 'env' });
  expect(r.json.unknown).toEqual(['DNASTORE_TIMOUT_MS']);

  const t = await cli(['config', '--name', 'orders'], { env });
  expect(t.code).toBe(0);
  expect(t.stdout).toMatch(/^name +DNASTORE_BREAKER_NAME +orders +--name$/m);
  expect(t.stdout).toMatch(/^timeout +DNASTORE_TIMEOUT_MS +900 ms +env$/m);
  expect(t.stdout).toMatch(/^outboxHeaders +DNASTORE_OUTBOX_HEADERS +x-trace,accept +env$/m);
  expect(t.stderr).toContain('DNASTORE_TIMOUT_MS is not a variable dnastore-breaker reads');
});

test('--env-file: .env syntax (comments, quotes, export, multi-line), read instead of the environment', async () => {
  const file = path.join(tmp, 'service.env');
  fs.writeFileSync(
    file,
    [
      '# the service',
      'export DNASTORE_TIMEOUT_MS=2500',
      'DNASTORE_BREAKER_NAME="sigil-api"   # quoted, comment after',
      "DNASTORE_LKG_TENANT_HEADER='X-Org#Id'",
      'DNASTORE_LKG_VARY_HEADERS="accept-language,',
      ' accept"',
      'DNASTORE_RETRY_BASE_MS=',
      'OTHER_THING=ignored',
      '',
    ].join('\n'),
  );
  // The shell's value is not what is checked: the file is.
  const r = await cli(['config', '--env-file', file, '--json'], { env: { DNASTORE_TIMEOUT_MS: '111', DNASTORE_DEADLINE_MS: '7' } });
  expect(r.code).toBe(0);
  expect(r.json).toMatchObject({ ok: true, name: 'sigil-api', from: { file } });
  expect(setting(r.json, 'timeout')).toMatchObject({ value: 2500, source: 'file', from: 'DNASTORE_TIMEOUT_MS' });
  expect(setting(r.json, 'deadline')).toMatchObject({ value: 10000, source: 'default' });
  expect(setting(r.json, 'tenantHeader')).toMatchObject({ value: 'X-Org#Id', source: 'file' });
  expect(setting(r.json, 'varyHeaders').value).toEqual(['accept-language', 'accept']);
  // Empty: unset, as createBreaker reads it.
  expect(setting(r.json, 'retryBaseMs')).toMatchObject({ value: 100, source: 'default' });

  const t = await cli(['config', '--env-file', file]);
  expect(t.stdout).toContain(`configuration from the file ${file}`);
  expect(t.stdout).toMatch(/^timeout +DNASTORE_TIMEOUT_MS +2500 ms +file$/m);

  // -f: `--env-file` naming a missing file is refused by Node itself, before the command
  // runs (exit 9, nodejs/node#54232).
  const missing = await cli(['config', '-f', path.join(tmp, 'nope.env')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('cannot read the env file');
});

// One case per kind of check in the core's table: integer range and syntax, enums, booleans,
// URLs, Redis URLs, header lists, options that depend on others, TLS files, the name.
const BAD = {
  'integer below its range': { DNASTORE_TIMEOUT_MS: '0' },
  'integer syntax': { DNASTORE_CIRCUIT_ERROR_THRESHOLD: '50%' },
  'integer above its range': { DNASTORE_OUTBOX_MAX_ENTRIES: '10000001' },
  enum: { DNASTORE_OUTBOX: 'sometimes' },
  'another enum': { DNASTORE_TLS_MIN_VERSION: '1.1' },
  boolean: { DNASTORE_COALESCE: 'perhaps' },
  'base URL': { DNASTORE_URL: 'ftp://dnastore.internal' },
  'Redis URL': { DNASTORE_LKG_REDIS_URL: 'http://127.0.0.1:6379' },
  'header list': { DNASTORE_LKG_VARY_HEADERS: 'accept, bad header' },
  'identity header not ignorable': { DNASTORE_LKG_IGNORE_HEADERS: 'authorization' },
  'retryMaxMs below retryBaseMs': { DNASTORE_RETRY_BASE_MS: '500', DNASTORE_RETRY_MAX_MS: '100' },
  'rolling window not a multiple of its buckets': { DNASTORE_CIRCUIT_ROLLING_MS: '1000', DNASTORE_CIRCUIT_ROLLING_BUCKETS: '7' },
  'maxQueued without the bulkhead': { DNASTORE_MAX_QUEUED: '5' },
  'caMode only without caCert': { DNASTORE_CA_MODE: 'only' },
  'a CA file that does not exist': { DNASTORE_CA_CERT: '/nonexistent/ca.pem' },
  'a breaker name': { DNASTORE_BREAKER_NAME: 'has spaces' },
};

test.each(Object.entries(BAD))('%s: exit 1 naming the variable, with createBreaker\'s message', async (_kind, env) => {
  const err = thrown(env);
  expect(err.code).toBe('ECONFIG');
  const r = await cli(['config', '--json'], { env });
  expect(r.code).toBe(1);
  expect(r.json).toEqual({ ok: false, error: { message: `invalid configuration: ${err.message}`, key: expect.any(String) } });
  expect(Object.keys(env)).toContain(r.json.error.key);
  expect(err.message).toContain(r.json.error.key);
  const t = await cli(['config'], { env });
  expect(t.code).toBe(1);
  expect(t.stdout).toBe('');
  expect(t.stderr).toBe(`dnastore-breaker config: invalid configuration: ${err.message}\n`);
});

test('a bad --name and a bad variable in an --env-file are named as such', async () => {
  const r = await cli(['config', '--name', 'bad name', '--json']);
  expect(r.code).toBe(1);
  expect(r.json.error).toEqual({ key: '--name', message: `invalid configuration: ${thrown({}, { name: 'bad name' }).message}` });
  const file = path.join(tmp, 'bad.env');
  fs.writeFileSync(file, 'DNASTORE_DEADLINE_MS=soon\n');
  const f = await cli(['config', '--env-file', file]);
  expect(f.code).toBe(1);
  expect(f.stderr).toContain(`invalid configuration (in ${file}): invalid environment variable DNASTORE_DEADLINE_MS="soon"`);
});

test('secrets are never printed: signing secret, Redis and proxy passwords, URL credentials, key text', async () => {
  const pki = pkiDir('cli-config');
  try {
    const ca = makeCa(pki, 'ca');
    const leaf = makeLeaf(pki, ca, 'client', { usage: 'clientAuth' });
    const keyText = fs.readFileSync(leaf.key, 'utf8');
    const env = {
      SPIRAL_EVENT_SECRET: 'sig-secret-1',
      DNASTORE_LKG_REDIS_URL: 'redis://app:redis-pass-2@127.0.0.1:6380/1',
      DNASTORE_OUTBOX_REDIS_URL: 'rediss://:redis-pass-3@127.0.0.1:6381',
      DNASTORE_PROXY: 'http://proxy-user:proxy-pass-4@127.0.0.1:3128',
      DNASTORE_URL: 'https://svc:base-pass-5@127.0.0.1:8443/',
      DNASTORE_TLS_SERVER_NAME: 'dnastore.internal',
      DNASTORE_CLIENT_CERT: fs.readFileSync(leaf.crt, 'utf8'),
      DNASTORE_CLIENT_KEY: keyText,
    };
    const keyLine = keyText.split('\n')[1];
    const secrets = ['sig-secret-1', 'redis-pass-2', 'redis-pass-3', 'proxy-user', 'proxy-pass-4', 'base-pass-5', keyLine];
    for (const args of [['config'], ['config', '--json']]) {
      const r = await cli(args, { env });
      expect(r.code).toBe(0);
      for (const s of secrets) expect({ args, s, shown: `${r.stdout}${r.stderr}`.includes(s) }).toEqual({ args, s, shown: false });
    }
    const { json } = await cli(['config', '--json'], { env });
    expect(setting(json, 'signingSecret')).toMatchObject({ value: '(set, redacted)', redacted: true, from: 'SPIRAL_EVENT_SECRET' });
    expect(setting(json, 'redisUrl')).toMatchObject({ value: 'redis://***@127.0.0.1:6380/1', redacted: true });
    expect(setting(json, 'outboxRedisUrl')).toMatchObject({ value: 'rediss://***@127.0.0.1:6381/0', redacted: true });
    expect(setting(json, 'proxy')).toMatchObject({ value: 'http://***@127.0.0.1:3128/', redacted: true });
    expect(setting(json, 'baseUrl')).toMatchObject({ value: 'https://***@127.0.0.1:8443/', redacted: true });
    expect(setting(json, 'clientKey')).toMatchObject({ value: '(PEM text, redacted)', redacted: true });
    expect(setting(json, 'clientCert').value).toMatch(/^\(PEM text, \d+ bytes\)$/);
    // And an error about a secret does not repeat it either.
    const bad = await cli(['config'], { env: { DNASTORE_PROXY: 'https://proxy-user:proxy-pass-4@127.0.0.1:3128' } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('DNASTORE_PROXY');
    expect(bad.stderr).not.toContain('proxy-pass-4');
  } finally {
    fs.rmSync(pki, { recursive: true, force: true });
  }
});

test('usage errors exit 2; --help exits 0 for the command and each command', async () => {
  for (const args of [[], ['nope'], ['toString'], ['config', '--bogus'], ['config', 'extra'], ['config', '--name']]) {
    const r = await cli(args);
    expect({ args, code: r.code, out: r.stdout }).toEqual({ args, code: 2, out: '' });
    expect(r.stderr).toMatch(/Usage: dnastore-breaker/);
  }
  for (const args of [['--help'], ['help'], ['help', 'outbox'], ['config', '--help'], ['outbox', '--help'], ['outbox', 'list', '--help'], ['circuit', '--help'], ['circuit', 'open', '-h']]) {
    const r = await cli(args);
    expect({ args, code: r.code }).toEqual({ args, code: 0 });
    expect(r.stdout).toMatch(/^Usage: dnastore-breaker/);
  }
});
