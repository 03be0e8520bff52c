'use strict';

// Loads the native addon through napi-rs's generated loader (binding.js: a local
// `dnastore-breaker.<platform>.node`, else the per-platform package from
// optionalDependencies). When neither loads, the generated message blames an npm bug; this
// one says what was looked for on which platform, and how to build from source.

const fs = require('node:fs');
const path = require('node:path');

function libc() {
  if (process.platform !== 'linux') return '';
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  return report?.header?.glibcVersionRuntime ? '-gnu' : '-musl';
}

function platformTag() {
  const abi = process.platform === 'win32' ? '-msvc' : libc();
  return `${process.platform}-${process.arch}${abi}`;
}

// napi's loader chains each attempt's error under `cause`; its own top message blames npm.
function causes(err) {
  const out = [];
  for (let e = err && err.cause; e && out.length < 8; e = e.cause) out.unshift(String(e.message).split('\n')[0]);
  // The generated loader also tries WebAssembly builds, which this package does not ship.
  const native = out.filter((m) => !m.includes('wasi'));
  return native.length ? native : [String(err && err.message)];
}

function installed(name) {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

function loadError(cause) {
  const tag = platformTag();
  const pkg = require('../package.json');
  const known = Object.keys(pkg.optionalDependencies || {}).map((n) => n.slice(`${pkg.name}-`.length));
  const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
  const local = path.join(__dirname, '..', `${pkg.napi.binaryName}.${tag}.node`);
  const lines = [
    `dnastore-breaker: no native binary loads on this platform (${tag}${glibc ? `, glibc ${glibc}` : ''}).`,
    `Looked for: ${local} and the package ${pkg.name}-${tag}.`,
    fs.existsSync(local)
      ? `${local} exists but did not load (see the error below: a damaged file, or a glibc older than it needs).`
      : installed(`${pkg.name}-${tag}`)
      ? `${pkg.name}-${tag} is installed but its binary did not load (see the error below: a damaged file, or a glibc older than it needs).`
      : known.length === 0
      ? 'This copy names no prebuilt platform packages (a source checkout, or a packed one without its binary).'
      : known.includes(tag)
        ? `${pkg.name}-${tag} is published for this platform: check that optional dependencies were installed (npm install --include=optional; not --omit=optional or --no-optional).`
        : `No prebuilt binary is published for ${tag} (published: ${known.join(', ')}).`,
    `The linux-x64-gnu binary needs glibc >= ${pkg.config.minGlibc}.`,
    'To build from source (needs Rust >= 1.89 and cargo): git clone the repository, then `npm ci && npm run build` in it, and depend on that directory.',
    ...causes(cause).map((m) => `  tried: ${m}`),
  ];
  const err = new Error(lines.join('\n'));
  err.code = 'ERR_DNASTORE_NATIVE_BINDING';
  err.cause = cause;
  return err;
}

let native;
try {
  native = require('../binding.js');
} catch (cause) {
  throw loadError(cause);
}

module.exports = native;
