#!/usr/bin/env bash
# The release build of the addon (`npm run build`).
# - One build per checkout at a time: the lock is this checkout's target/.napi-build.lock,
#   so two checkouts never wait on each other, and a wait is announced, never silent.
# - Linked by zig (cargo-zigbuild) against glibc ${minGlibc} (package.json "config"), so the
#   linux-x64-gnu binary loads on older distributions; __test__/package.test.js checks the
#   binary's GLIBC_ symbol versions. Without cargo-zigbuild (scripts/tools.sh installs it)
#   it says so and builds against this machine's glibc, which that test then reports.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p target
exec 9>target/.napi-build.lock
if ! flock -n 9; then
  echo "[build] another build of this checkout holds target/.napi-build.lock: waiting for it"
  flock 9
fi

glibc="$(node -p "require('./package.json').config.minGlibc")"
args=(build --platform --release --js binding.js --dts binding.d.ts)
if command -v cargo-zigbuild >/dev/null 2>&1 && python3 -c 'import ziglang' >/dev/null 2>&1; then
  echo "[build] release build, linked by zig for glibc >= ${glibc} (cargo zigbuild)"
  args+=(--cross-compile --target "x86_64-unknown-linux-gnu.${glibc}")
else
  echo "[build] cargo-zigbuild or ziglang is missing (bash scripts/tools.sh installs them):"
  echo "[build] building against this machine's glibc instead; the binary will not load on older ones"
fi
exec npx napi "${args[@]}"
