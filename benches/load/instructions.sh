#!/usr/bin/env bash
# Instructions per proxied request under callgrind; see instructions.py --help.
set -euo pipefail
exec python3 "$(dirname "$0")/instructions.py" "$@"
