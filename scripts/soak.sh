#!/usr/bin/env bash
# The soak: mixed traffic (keep-alive, new connections, h2c, TLS with h2
# and HTTP/1.1, cache hits, WebSocket) through the release binary on
# loopback while backends are restarted and the config reloaded (SIGHUP),
# then 10,000 idle keep-alive connections. Fails on any unexpected error or
# if RSS at the end is more than 10% above RSS after warm-up.
#   scripts/soak.sh          # 10 minutes
#   scripts/soak.sh 120      # 2 minutes
# See docs/hardening.md. Traffic goes to 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECONDS="${1:-600}"
echo "== soak for ${SOAK_SECONDS}s (release build)"
cargo test --release --test soak -- --ignored --nocapture 2>&1 | grep -Ev '^(running|$)'
echo "== 10,000 idle keep-alive connections"
cargo test --release --test idle_memory -- --ignored --nocapture 2>&1 | grep -Ev '^(running|$)'
