"""The running node: its durable state plus what exists only while it runs.

`VpnServer` is what the admin API and the listener see. Configuration lives
in `state` (NodeState: change() is durable before it returns); run-time
objects (hub instances, sessions, bridges) register here as the data plane
and the cluster link add them.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from node.state.node_state import NodeState

PRODUCT_NAME = "vpncluster VPN Server"
# The SoftEther version we are compatible with; clients and tools read these.
COMPAT_VERSION, COMPAT_BUILD = 501, 9674
VERSION_TEXT = "5.01 Build 9674 (vpncluster 0.1.0)"


class HubRuntime(Protocol):
    """What the admin API reads of a running hub instance (the data plane
    provides it)."""

    def session_count(self) -> int: ...
    def tcp_connection_count(self) -> int: ...
    def mac_table_size(self) -> int: ...
    def ip_table_size(self) -> int: ...
    def traffic(self) -> dict[str, int]: ...


@dataclass
class VpnServer:
    state: NodeState
    state_dir: Path
    cert_der: bytes
    started_at: float = field(default_factory=time.time)
    hostname: str = field(default_factory=socket.gethostname)
    hubs: dict[str, HubRuntime] = field(default_factory=dict)   # lower-case hub name → instance
    # Cluster modes: the running role (node/cluster/roles.py; None = standalone)
    # and the dynamic hubs the controller placed on this node (lower-case names).
    cluster: Any = None
    dynamic_instances: set[str] = field(default_factory=set)
    # The running DataPlane and Listener (set by the daemon once they exist;
    # None in unit tests that build a server without them).
    dataplane: Any = None
    listener: Any = None

    def hub_runtime(self, name: str) -> HubRuntime | None:
        return self.hubs.get(name.lower())

    def refresh_dataplane(self) -> None:
        """Re-run hub placement after `dynamic_instances` changed (the config
        the data plane follows by itself); nothing before it exists."""
        if self.dataplane is not None:
            self.dataplane.refresh()

    def session_count(self) -> int:
        return sum(h.session_count() for h in self.hubs.values())

    def tcp_connection_count(self) -> int:
        return sum(h.tcp_connection_count() for h in self.hubs.values())

    def os_info(self) -> dict[str, Any]:
        uname = platform.uname()
        return {"system": uname.system, "release": uname.release, "version": uname.version,
                "machine": uname.machine, "pid": os.getpid()}
