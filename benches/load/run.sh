#!/usr/bin/env bash
# Side-by-side load benchmark of farmgate, nginx and HAProxy on loopback.
# See run.py --help. A full run (every scenario) takes about 6 minutes;
# --only http,tls,cache picks scenario groups, --port-base moves every port.
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
