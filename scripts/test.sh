#!/usr/bin/env bash
# The whole test suite (the README's test command): Rust format, lints and core tests,
# the addon build, the JS linter, Jest (unit, integration against real processes,
# Redis, Prometheus), and a short k6 soak.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (core, no Node)"
cargo test -p dnastore-core --quiet

step "build the addon (release)"
node scripts/build-if-needed.js

step "eslint"
npx eslint .

step "tsc: the published types accept real usage and reject misuse"
npx tsc -p __test__/types

step "jest"
report="$(mktemp -d)/jest.json"
npx jest --ci --json --outputFile="$report"

if [ -f loadtest/run-soak.js ]; then
  step "k6 short soak (100 rps, DNAStore up/down cycles)"
  node loadtest/run-soak.js --duration "${SOAK_DURATION:-60s}"
fi

# One plain closing line for whoever reads the log's end.
node -e 'const r = require(process.argv[1]); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$report"
