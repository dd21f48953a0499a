#!/usr/bin/env bash
# The first command of the README: set everything up, then run the demo on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/coredump-agent demo "$@"
