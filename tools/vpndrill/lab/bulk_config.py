"""Give a stopped vpnd many hubs and users at once, through its own config
store (node/state): one saved change instead of 100,000 admin calls, each
of which would rewrite the whole configuration. For tests and benches of
the cluster's configuration sync."""

from __future__ import annotations

import time
from pathlib import Path

from node.softether.sha0 import hash_password
from node.state import model
from node.state.node_state import NodeState


def add_hubs(state_dir: Path, hubs: int, users_per_hub: int, *, hub_type: int = model.HUB_DYNAMIC,
             prefix: str = "BULK", note: str = "") -> int:
    """Add hubs PREFIX0..PREFIX{hubs-1}, each with users user0..user{n-1}
    (password "pw-<user>"), to the config of the vpnd in `state_dir`, which
    must not be running. Returns the config serial afterwards."""
    now = time.time()
    keys = [hash_password(f"user{j}", f"pw-user{j}") for j in range(users_per_hub)]  # same names in every hub

    def hub(i: int) -> model.Hub:
        users = [model.User(f"user{j}", auth_type=model.AUTH_PASSWORD, hashed_key=keys[j], note=note,
                            created_time=now, updated_time=now)
                 for j in range(users_per_hub)]
        return model.Hub(f"{prefix}{i}", hub_type=hub_type, created_time=now, users=users)

    def add(config: model.Server) -> None:
        config.hubs.extend(hub(i) for i in range(hubs))

    state = NodeState.open(Path(state_dir))
    state.change(add)
    return state.config.serial
