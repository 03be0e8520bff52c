#!/usr/bin/env bash
# The whole test suite (the README's test command; `.ci/run` is `npm ci` then this):
# the tools check (installing what it can), Rust format, lints and core tests, the addon
# build, the JS linter, the types, Jest (unit, integration against real processes, Redis,
# Prometheus, the install from a local registry), a short k6 soak, and the chaos run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

# Runs a step with its output as it comes, and a line whenever it has been quiet for 15 s
# (a release link or a long test can be silent for minutes), so no step looks hung.
run() {
  local label="$1"
  shift
  local stamp start=$SECONDS
  stamp="$(mktemp)"
  (
    while sleep 5; do
      if [ $(($(date +%s) - $(stat -c %Y "$stamp"))) -ge 15 ]; then
        echo "    ... ${label}: still running ($((SECONDS - start)) s)"
        : >"$stamp"
      fi
    done
  ) &
  local watcher=$!
  local rc
  set +e
  # `|| [ -n "$line" ]`: a last line without a newline is printed too.
  "$@" 2>&1 | while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    : >"$stamp"
  done
  rc=${PIPESTATUS[0]}
  set -e
  kill "$watcher" 2>/dev/null
  wait "$watcher" 2>/dev/null || true
  rm -f "$stamp"
  return "$rc"
}

step "tools: prometheus, promtool, redis-server, openssl, objdump, k6, cargo-zigbuild (scripts/tools.sh)"
bash scripts/tools.sh

step "cargo fmt --check"
run fmt cargo fmt --all -- --check

# The binding's and the core's top-level modules import each other one way only (issue 27):
# a cycle in either fails here.
step "module cycles (scripts/module-cycles.js)"
run cycles node scripts/module-cycles.js src crates/core/src

step "cargo clippy -D warnings"
run clippy cargo clippy --workspace --all-targets -- -D warnings

# --include-ignored: the tests that need redis-server are #[ignore]d with that reason, so a
# plain `cargo test` shows them as ignored; here the tools step has made sure it exists.
step "cargo test (core, no Node; Redis tests included)"
run "cargo test" cargo test -p dnastore-core -- --include-ignored

step "build the addon (release, zig-linked for glibc $(node -p "require('./package.json').config.minGlibc"))"
run build node scripts/build-if-needed.js

step "eslint"
run eslint npx eslint .

step "tsc: the published types accept real usage and reject misuse"
run tsc npx tsc -p __test__/types

step "jest"
report="$(mktemp -d)/jest.json"
jest_rc=0
run jest npx jest --ci --json --outputFile="$report" || jest_rc=$?
# One plain line for whoever reads the log's end, on failure too.
summary() {
  node -e 'try { const r = require(process.argv[1]); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped (${r.numFailedTestSuites} of ${r.numTotalTestSuites} suites failed)`) } catch { console.log("jest: no report (it did not finish)") }' "$report"
}
if [ "$jest_rc" -ne 0 ]; then
  summary
  echo "FAILED: jest exited with $jest_rc (the failures are listed above)"
  exit "$jest_rc"
fi

if [ -f loadtest/run-soak.js ]; then
  step "k6 short soak (100 rps, DNAStore up/down cycles)"
  run soak node loadtest/run-soak.js --duration "${SOAK_DURATION:-60s}"
fi

# About 3.2 minutes: 3 replicas behind nginx, Redis with Sentinel, Prometheus, the eight
# faults on a new seed (printed: --seed N replays it), the write audit and the gates.
if [ -f loadtest/chaos/run.js ]; then
  step "chaos: a fleet through the eight faults (npm run chaos, ${CHAOS_DURATION:-180s})"
  chaos_dir="$(mktemp -d)"
  run chaos node loadtest/chaos/run.js --duration "${CHAOS_DURATION:-180s}" --summary "$chaos_dir/summary.json"
  rm -rf "$chaos_dir"
fi

summary
