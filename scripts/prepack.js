'use strict';

// `npm pack` / `npm publish` of the checkout (prepack and prepublishOnly hooks).
// - pack: refuses when this platform's binary is not built, instead of a tarball that
//   installs and then cannot load. A packed checkout carries its one binary.
// - publish: refuses; releases go through `npm run release` (scripts/publish.js), which
//   publishes the per-platform packages first, then the main package naming them.

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkg = require('../package.json');

if (process.argv[2] === 'publish') {
  console.error(`[prepublishOnly] refusing a direct \`npm publish\` of the checkout: it would ship one platform's binary inside the main package. Run \`npm run release -- --registry <url>\` (scripts/publish.js).`);
  process.exit(1);
}

const built = fs.readdirSync(root).filter((f) => f.startsWith(`${pkg.napi.binaryName}.`) && f.endsWith('.node'));
if (built.length === 0) {
  console.error(`[prepack] refusing to pack ${pkg.name} without a native binary: no ${pkg.napi.binaryName}.<platform>.node in ${root}. Run \`npm run build\` first.`);
  process.exit(1);
}
console.error(`[prepack] packing with ${built.join(', ')}`);
