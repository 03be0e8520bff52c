'use strict';

// Publishes the package the way napi-rs projects do: one package per platform under npm/
// (each holding only its .node), then the main package, whose optionalDependencies name
// exactly the platform packages just published, so npm installs the one matching the
// machine and no other. Only platforms whose binary exists are published (this image
// builds x86_64-unknown-linux-gnu only); with none, it refuses.
//
//   node scripts/publish.js [--registry URL] [--userconfig FILE] [--dry-run]
//
// The main package is published from a staged copy, so the checkout's package.json never
// changes (napi's own pre-publish rewrites it in place).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function arg(name) {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}
const npmArgs = [];
for (const name of ['--registry', '--userconfig']) if (arg(name)) npmArgs.push(name, arg(name));
if (process.argv.includes('--dry-run')) npmArgs.push('--dry-run');

function npm(args, cwd) {
  execFileSync('npm', [...args, ...npmArgs], { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
}

// Platform packages: npm/<platform>/, made by `napi create-npm-dirs` from napi.targets.
const platforms = fs.readdirSync(path.join(root, 'npm')).filter((d) => fs.existsSync(path.join(root, 'npm', d, 'package.json')));
const published = [];
for (const dir of platforms) {
  const file = `${pkg.napi.binaryName}.${dir}.node`;
  const built = path.join(root, file);
  if (!fs.existsSync(built)) {
    console.log(`[publish] ${dir}: no ${file} built here, not published`);
    continue;
  }
  const sub = JSON.parse(fs.readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8'));
  if (sub.version !== pkg.version) throw new Error(`npm/${dir}/package.json is ${sub.version}, the package is ${pkg.version}: run \`npx napi version\``);
  fs.copyFileSync(built, path.join(root, 'npm', dir, file));
  console.log(`[publish] ${sub.name}@${sub.version}`);
  npm(['publish', '--access', 'public'], path.join(root, 'npm', dir));
  published.push(sub.name);
}
if (published.length === 0) {
  console.error('[publish] refusing: no native binary is built for any platform (run `npm run build` first)');
  process.exit(1);
}

// The main package: its `files`, minus binaries (they ship in the platform packages).
const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'dnastore-publish-'));
try {
  const listed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }))[0].files;
  for (const { path: rel } of listed) {
    if (rel.endsWith('.node') || rel === 'package.json') continue;
    fs.mkdirSync(path.dirname(path.join(stage, rel)), { recursive: true });
    fs.copyFileSync(path.join(root, rel), path.join(stage, rel));
  }
  const main = { ...pkg, optionalDependencies: Object.fromEntries(published.map((n) => [n, pkg.version])) };
  // The staged package is final: no build or test scripts, no dev dependencies.
  delete main.scripts;
  delete main.devDependencies;
  delete main.overrides;
  delete main.jest;
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(main, null, 2)}\n`);
  console.log(`[publish] ${pkg.name}@${pkg.version} (optionalDependencies: ${published.join(', ')})`);
  npm(['publish', '--access', 'public'], stage);
} finally {
  fs.rmSync(stage, { recursive: true, force: true });
}
