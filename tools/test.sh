#!/usr/bin/env bash
# Runs the whole test suite (installs what is missing first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec python3 -m pytest -q "$@"
