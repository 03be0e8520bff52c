'use strict';

// Installs like a package: a real npm registry (Verdaccio) on a free loopback port, the
// release flow (scripts/publish.js: the linux-x64-gnu platform package, then the main
// package naming it in optionalDependencies), and `npm install dnastore-breaker` into an
// empty directory with no cargo on the PATH. The installed copy then fires against a local
// server and prints metrics(), and its operator command runs (`npm exec dnastore-breaker`).
// Verdaccio has no uplink: nothing leaves 127.0.0.1.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { freePort, eventually } = require('./helpers/upstream');

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const pkg = require('../package.json');

let dir;
let registry;
let verdaccio;
let userconfig;
// npm and node without cargo or rustc: what a consumer's machine has.
let consumerPath;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-install-'));
  const port = await freePort();
  registry = `http://127.0.0.1:${port}/`;
  fs.writeFileSync(
    path.join(dir, 'verdaccio.yaml'),
    [
      `storage: ${path.join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${path.join(dir, 'htpasswd')}`,
      'uplinks: {}',
      'packages:',
      "  '**':",
      '    access: $all',
      '    publish: $authenticated',
      'logs: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  verdaccio = spawn(process.execPath, [require.resolve('verdaccio/bin/verdaccio'), '--config', path.join(dir, 'verdaccio.yaml'), '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  verdaccio.stdout.on('data', (d) => (log += d));
  verdaccio.stderr.on('data', (d) => (log += d));
  const up = await eventually(async () => (await fetch(`${registry}-/ping`).catch(() => null))?.ok, 30000, 200).catch(() => false);
  if (!up) throw new Error(`verdaccio did not start within 30 s: ${log.slice(-1000)}`);

  // A registry user (npm adduser's API), and an npmrc that points only at this registry.
  const user = await fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'ci-password-1' }),
  }).then((r) => r.json());
  userconfig = path.join(dir, 'npmrc');
  fs.writeFileSync(userconfig, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${user.token}\n`);

  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const tool of ['node', 'npm', 'sh']) {
    const { stdout } = await run('sh', ['-c', `command -v ${tool}`]);
    fs.symlinkSync(fs.realpathSync(stdout.trim()), path.join(bin, tool));
  }
  // npm's own shebang resolves node through PATH.
  consumerPath = [bin, '/usr/bin', '/bin'].join(':');
}, 60000);

afterAll(() => {
  if (verdaccio && verdaccio.exitCode === null) verdaccio.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('publishes the platform package and the main package, installs from the registry without cargo, and runs', async () => {
  const published = await run(process.execPath, [path.join(ROOT, 'scripts', 'publish.js'), '--registry', registry, '--userconfig', userconfig], {
    cwd: ROOT,
    maxBuffer: 16 << 20,
  });
  expect(published.stdout).toContain(`${pkg.name}-linux-x64-gnu@${pkg.version}`);

  const meta = await fetch(`${registry}${pkg.name}`).then((r) => r.json());
  const latest = meta.versions[pkg.version];
  expect(latest.optionalDependencies).toEqual({ [`${pkg.name}-linux-x64-gnu`]: pkg.version });
  expect(latest.scripts).toBeUndefined();
  expect(latest.jest).toBeUndefined();

  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "version": "1.0.0", "private": true }\n');
  const env = { HOME: dir, PATH: consumerPath, npm_config_userconfig: userconfig, npm_config_cache: path.join(dir, 'npm-cache') };
  await expect(run('sh', ['-c', 'command -v cargo || command -v rustc'], { env })).rejects.toBeTruthy();
  await run('npm', ['install', '--no-audit', '--no-fund', pkg.name], { cwd: app, env });

  const installed = path.join(app, 'node_modules');
  expect(fs.existsSync(path.join(installed, `${pkg.name}-linux-x64-gnu`, `${pkg.napi.binaryName}.linux-x64-gnu.node`))).toBe(true);
  // The main package carries no binary, and no test-only entry.
  expect(fs.readdirSync(path.join(installed, pkg.name)).filter((f) => f.endsWith('.node'))).toEqual([]);
  expect(fs.existsSync(path.join(installed, pkg.name, 'lib', 'testing.js'))).toBe(false);

  fs.writeFileSync(
    path.join(app, 'smoke.js'),
    `const http = require('node:http');
const { createBreaker, metrics } = require('${pkg.name}');
const server = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}'); });
server.listen(0, '127.0.0.1', async () => {
  const b = createBreaker({ name: 'installed', baseUrl: 'http://127.0.0.1:' + server.address().port, logger: false });
  console.log(JSON.stringify(await b.fire('/ping')));
  console.log(metrics());
  b.shutdown();
  server.close();
});
`,
  );
  const { stdout } = await run('node', ['smoke.js'], { cwd: app, env, timeout: 20000 });
  expect(stdout).toContain('{"ok":true}');
  expect(stdout).toMatch(/dnastore_requests_total\{[^}]*name="installed"/);

  // The operator command from the same install (`npx dnastore-breaker`, package.json "bin").
  const cli = await run('npm', ['exec', '--offline', '--', 'dnastore-breaker', 'config', '--name', 'installed', '--json'], {
    cwd: app,
    env: { ...env, DNASTORE_TIMEOUT_MS: '1234' },
    timeout: 20000,
  });
  const doc = JSON.parse(cli.stdout);
  expect(doc).toMatchObject({ ok: true, name: 'installed' });
  expect(doc.settings.find((s) => s.option === 'timeout')).toMatchObject({ value: 1234, source: 'env', from: 'DNASTORE_TIMEOUT_MS' });
  await expect(run('npm', ['exec', '--offline', '--', 'dnastore-breaker', 'config'], { cwd: app, env: { ...env, DNASTORE_TIMEOUT_MS: '0' } })).rejects.toMatchObject({
    code: 1,
    stderr: expect.stringContaining('DNASTORE_TIMEOUT_MS="0": must be an integer from 1 to 600000'),
  });
}, 120000);
