'use strict';

// Runs opossum's own tape tests against opossum and/or this package's CircuitBreaker,
// each test() alone in its own process (a crash, a hang or an unhandled rejection then
// costs that test only), and prints pass/fail counts per implementation.
//
//   node scripts/opossum-tests.js <dir> [--impl opossum|dnastore|both] [--filter text]
//                                 [--jobs n] [--timeout ms] [--json file]
//
// <dir> must hold opossum's `test/` folder (the tape files and their common.js) and a
// `node_modules/` with `tape`; neither is part of this repository (opossum's tests are
// not published to npm: fetch them from its repository, and `npm install tape` there).
// Each run copies the test files into a temporary package root whose index.js (and
// lib/circuit.js) export the implementation under test, as opossum's own checkout would;
// lib/status.js and lib/cache.js map to that implementation's Status and MemoryCache.
// docs/opossum.md's "Differences from opossum" lists the tests this package fails on purpose.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const REPO = path.resolve(__dirname, '..');

function parseArgs(argv) {
  const a = { dir: null, impl: 'both', filter: '', jobs: 2, timeout: 30000, json: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--impl') a.impl = argv[++i];
    else if (k === '--filter') a.filter = argv[++i];
    else if (k === '--jobs') a.jobs = Math.max(1, Number(argv[++i]) || 1);
    else if (k === '--timeout') a.timeout = Number(argv[++i]) || 30000;
    else if (k === '--json') a.json = argv[++i];
    else if (!a.dir) a.dir = path.resolve(k);
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.dir) throw new Error('usage: node scripts/opossum-tests.js <dir with test/ and node_modules/tape> [--impl opossum|dnastore|both]');
  if (!fs.existsSync(path.join(a.dir, 'test'))) throw new Error(`${a.dir}/test: no such directory`);
  if (!fs.existsSync(path.join(a.dir, 'node_modules', 'tape'))) throw new Error(`${a.dir}/node_modules/tape: missing (npm install tape there)`);
  return a;
}

// A package root laid out as opossum's checkout, exporting `impl`.
function makeRoot(dir, impl) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `opossum-tests-${impl}-`));
  const q = JSON.stringify;
  const mods =
    impl === 'opossum'
      ? {
          circuit: `module.exports = require(${q(path.join(REPO, 'node_modules/opossum'))});`,
          status: `module.exports = require(${q(path.join(REPO, 'node_modules/opossum/lib/status.js'))});`,
          cache: `module.exports = require(${q(path.join(REPO, 'node_modules/opossum/lib/cache.js'))});`,
        }
      : {
          circuit: `module.exports = require(${q(REPO)}).CircuitBreaker;`,
          status: `module.exports = require(${q(path.join(REPO, 'lib/circuit-status.js'))}).Status;`,
          cache: `module.exports = require(${q(path.join(REPO, 'lib/memory-cache.js'))}).MemoryCache;`,
        };
  fs.mkdirSync(path.join(root, 'lib'));
  fs.writeFileSync(path.join(root, 'index.js'), mods.circuit);
  fs.writeFileSync(path.join(root, 'lib/circuit.js'), mods.circuit);
  fs.writeFileSync(path.join(root, 'lib/status.js'), mods.status);
  fs.writeFileSync(path.join(root, 'lib/cache.js'), mods.cache);
  fs.cpSync(path.join(dir, 'test'), path.join(root, 'test'), { recursive: true });
  fs.symlinkSync(path.join(dir, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  // Preloaded into every child: `tape` registers only the test() numbered TEST_INDEX
  // (or, with TEST_INDEX=-1, records the names and runs none).
  fs.writeFileSync(
    path.join(root, 'one-test.js'),
    `'use strict';
const Module = require('node:module');
const target = Number(process.env.TEST_INDEX);
const names = [];
const load = Module._load;
let wrapped = null;
Module._load = function (request, parent, isMain) {
  if (request !== 'tape') return load.apply(this, arguments);
  if (wrapped) return wrapped;
  const real = load.apply(this, arguments);
  let i = 0;
  wrapped = function (name, ...rest) {
    const idx = i++;
    names.push(typeof name === 'string' ? name : '(unnamed)');
    if (idx === target) return real(name, ...rest);
    return undefined;
  };
  wrapped.only = wrapped;
  wrapped.skip = () => {};
  wrapped.onFinish = real.onFinish;
  wrapped.onFailure = real.onFailure;
  return wrapped;
};
if (target < 0) process.on('exit', () => process.stdout.write('\\n@@NAMES ' + JSON.stringify(names) + '\\n'));
`,
  );
  return root;
}

function run(root, file, index, timeout) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-r', path.join(root, 'one-test.js'), path.join(root, 'test', file)], {
      cwd: root,
      env: { ...process.env, TEST_INDEX: String(index) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

async function listTests(root, file, timeout) {
  const r = await run(root, file, -1, timeout);
  const m = /@@NAMES (.*)\n/.exec(r.out);
  return m ? JSON.parse(m[1]) : [];
}

function verdict(r) {
  const ok = (r.out.match(/^ok \d+/gm) || []).length;
  const notOk = r.out.match(/^not ok \d+.*$/gm) || [];
  if (r.signal) return { pass: false, why: `killed (${r.signal}): hung past the timeout` };
  if (notOk.length > 0) return { pass: false, why: notOk[0] };
  if (r.code !== 0) {
    const last = r.err.trim().split('\n').slice(-3).join(' | ');
    return { pass: false, why: `exit ${r.code}: ${last}` };
  }
  if (ok === 0) return { pass: false, why: 'no assertion ran' };
  return { pass: true, why: `${ok} assertions` };
}

async function pool(items, jobs, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]);
      }
    }),
  );
  return results;
}

async function runImpl(a, impl) {
  const root = makeRoot(a.dir, impl);
  try {
    const files = fs.readdirSync(path.join(root, 'test')).filter((f) => f.endsWith('.js') && f !== 'common.js').sort();
    const cases = [];
    for (const file of files) {
      const names = await listTests(root, file, a.timeout);
      names.forEach((name, index) => {
        if (!a.filter || `${file} ${name}`.includes(a.filter)) cases.push({ file, index, name });
      });
    }
    const results = await pool(cases, a.jobs, async (c) => ({ ...c, ...verdict(await run(root, c.file, c.index, a.timeout)) }));
    return results;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const impls = a.impl === 'both' ? ['opossum', 'dnastore'] : [a.impl];
  const all = {};
  for (const impl of impls) {
    const results = await runImpl(a, impl);
    all[impl] = results;
    const passed = results.filter((r) => r.pass).length;
    console.log(`\n== ${impl}: ${passed} of ${results.length} tests pass`);
    for (const r of results.filter((x) => !x.pass)) console.log(`  FAIL ${r.file} #${r.index} "${r.name}": ${r.why}`);
  }
  if (a.json) fs.writeFileSync(a.json, JSON.stringify(all, null, 2));
}

main().catch((err) => {
  console.error(err.message);
  process.exit(2);
});
