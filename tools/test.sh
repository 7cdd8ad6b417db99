#!/usr/bin/env bash
# Runs the type checker, then the whole test suite (installs what is missing
# first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

# mypy reads [tool.mypy] in pyproject.toml. For now it checks only the parts
# that are clean (imports into the rest are followed, their errors not shown);
# once the rest is clean this widens to the whole configured set:
# `python3 -m mypy` alone. Left out until a fix elsewhere lands:
# vpnbus/endpoint.py (needs envelope.message to be a dataclass_transform) and
# node/admin/methods_session.py (needs a read-only `id` in the Port protocol
# of node/dataplane/bridge.py).
MYPY_CLEAN=(
    vpnbus/__init__.py vpnbus/client.py vpnbus/keys.py vpnbus/requests.py
    vpnbus/server.py vpnbus/sockets.py
    node/softether node/listener.py
    node/admin/__init__.py node/admin/api.py node/admin/auth.py node/admin/dispatch.py
    node/admin/fields.py node/admin/jsonrpc.py node/admin/jsonvalue.py
    node/admin/methods_bridge.py node/admin/methods_farm.py
    node/admin/methods_farm_member.py node/admin/methods_hub.py
    node/admin/methods_server.py node/admin/methods_user.py
    node/state/__init__.py node/state/node_state.py node/state/store.py node/state/tlscert.py
    tools
)
python3 -m mypy --follow-imports=silent "${MYPY_CLEAN[@]}"

exec python3 -m pytest -q "$@"
