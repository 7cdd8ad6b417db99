#!/usr/bin/env bash
# The README's main job (installs what is missing first): `vpndrill demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec python3 -m tools.vpndrill.main demo "$@"
