#!/usr/bin/env bash
# Side-by-side load benchmark of farmgate, nginx and HAProxy on loopback.
# See run.py --help. A full run takes about 4-5 minutes.
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
