#!/usr/bin/env bash
# Runs the type checker, then the whole test suite (installs what is missing
# first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

# The type checker first: [tool.mypy] in pyproject.toml (vpnbus, controller,
# node, tools).
python3 -m mypy

exec python3 -m pytest -q "$@"
