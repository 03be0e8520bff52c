'use strict';

// Makes sure both things under test exist and are current before anything is timed:
// the bare-reqwest ceiling binary (cargo) and the dnastore-breaker addon (napi).

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const BARE_REQWEST = path.join(ROOT, 'target', 'release', 'bare-reqwest');
const ADDON = path.join(ROOT, 'dnastore-breaker.linux-x64-gnu.node');

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return -1;
  }
}

function run(cmd, args, log) {
  log(`$ ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Builds bare-reqwest unless the binary is newer than its sources and Cargo.lock. */
function buildBareReqwest(log) {
  const inputs = [path.join(ROOT, 'crates', 'bench', 'src'), path.join(ROOT, 'crates', 'bench', 'Cargo.toml'), path.join(ROOT, 'Cargo.lock')];
  const newestInput = Math.max(...inputs.filter((p) => fs.existsSync(p)).map(newestMtime));
  if (mtime(BARE_REQWEST) > newestInput) {
    log('bare-reqwest is fresh, not rebuilding');
  } else {
    run('cargo', ['build', '--release', '-p', 'dnastore-bench', '--bin', 'bare-reqwest'], log);
  }
  return BARE_REQWEST;
}

/** Builds the addon when it is missing or older than the Rust sources it is made of. */
function ensureAddon(log) {
  const inputs = ['src', 'crates/core/src', 'crates/core/Cargo.toml', 'Cargo.toml'].map((p) => path.join(ROOT, p));
  const newestInput = Math.max(...inputs.filter((p) => fs.existsSync(p)).map(newestMtime));
  if (mtime(ADDON) > newestInput) {
    log(`addon is fresh (${new Date(mtime(ADDON)).toISOString()})`);
  } else {
    run('npm', ['run', '--silent', 'build'], log);
  }
  return ADDON;
}

module.exports = { buildBareReqwest, ensureAddon, ROOT };
