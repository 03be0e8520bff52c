'use strict';

// Builds the native addon when it is missing or older than any Rust source, so `npm run
// demo` and `npm test` work on a fresh clone without rebuilding an up-to-date addon.

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const addon = path.join(root, 'dnastore-breaker.linux-x64-gnu.node');
const inputs = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', 'crates/core'];

function newest(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let m = 0;
  for (const e of fs.readdirSync(p)) {
    if (e === 'target') continue;
    m = Math.max(m, newest(path.join(p, e)));
  }
  return m;
}

function needsBuild() {
  if (!fs.existsSync(addon)) return 'the addon is not built yet';
  const built = fs.statSync(addon).mtimeMs;
  const changed = inputs.map((i) => path.join(root, i)).filter((p) => fs.existsSync(p) && newest(p) > built);
  return changed.length ? `sources changed since the last build (${changed.map((p) => path.relative(root, p)).join(', ')})` : null;
}

const why = needsBuild();
if (why) {
  console.error(`[build] ${why}: building the addon (cold: ~3 min on 2 cores)...`);
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
} else {
  console.error('[build] addon is up to date');
}
