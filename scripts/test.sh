#!/usr/bin/env bash
# The README's test command: installs the Debian packages the tests drive
# (only those whose program is missing), then runs `cargo test` with any
# arguments given (`scripts/test.sh --test cli`, `scripts/test.sh -- --nocapture`).
#
#   scripts/test.sh --deps-only    install what is missing, run no tests
#
# Tests never skip when a program is missing: they fail naming the package.
# This script is what keeps a fresh Debian/Ubuntu machine (Rust toolchain and
# root or sudo) from meeting those failures.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per program a test needs: the path the test runs, the Debian
# package that provides it, and the tests that use it. Checked by path (not by
# dpkg), so a program installed another way counts. A path in a bin/
# directory must be executable; any other path (a library module) must exist.
NEEDS=(
  "/usr/bin/chromium          chromium      tests/status_page_browser.rs"
  "/usr/bin/systemd-analyze   systemd       tests/systemd.rs"
  "/usr/bin/man               man-db        tests/operator_cli.rs"
  "/usr/bin/python3           python3       tests/dying_backend.rs"
  "/usr/bin/pebble            pebble        tests/acme.rs tests/acme_tier.rs"
  "/usr/lib/python3/dist-packages/grpc/__init__.py  python3-grpcio  tests/grpc.rs"
  "/usr/bin/redis-server      redis-server  tests/cluster.rs tests/cluster_cache.rs tests/limits_cluster.rs tests/acme_tier.rs"
)

present() {
  case "$1" in
    */bin/*) [ -x "$1" ] ;;
    *) [ -e "$1" ] ;;
  esac
}

missing=()
for need in "${NEEDS[@]}"; do
  read -r path package users <<<"$need"
  if ! present "$path"; then
    echo "scripts/test.sh: $path is missing (needed by $users)"
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: no apt-get here; install these packages yourself: ${missing[*]}" >&2
    exit 1
  fi
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "scripts/test.sh: not root and no sudo; as root run: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  echo "scripts/test.sh: installing with apt-get: ${missing[*]}"
  "${as_root[@]}" apt-get update -q
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  for need in "${NEEDS[@]}"; do
    read -r path package _ <<<"$need"
    if ! present "$path"; then
      echo "scripts/test.sh: package $package installed but $path is still missing" >&2
      exit 1
    fi
  done
fi

if [ "${1:-}" = "--deps-only" ]; then
  echo "scripts/test.sh: everything the tests need is installed"
  exit 0
fi

exec cargo test "$@"
