"""The running node: its durable state plus what exists only while it runs.

`VpnServer` is what the admin API, the listener, the data plane and the
cluster roles see. Configuration lives in `state` (NodeState: change() is
durable before it returns); run-time objects (hub instances, sessions,
bridges) register here as the data plane adds them; the cluster role places
dynamic hubs through `dynamic_instances`, which the data plane watches, and
adds HTTP routes (discovery) through `routes`, which the listener serves.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from controller.tickets import TicketBook
from vpnbus.auth_backoff import AuthBackoff
from node.cluster.roles import ClusterRoles
from node.connections import ConnectionRegistry
from node.metrics import NodeMetrics
from node.state.node_state import NodeState
from node.tls_cipher import CipherSetting

if TYPE_CHECKING:
    from node.dataplane.hubs import RunningHub
    from node.listener import RouteHandler

PRODUCT_NAME = "vpncluster VPN Server"
# The SoftEther version we are compatible with; clients and tools read these.
COMPAT_VERSION, COMPAT_BUILD = 501, 9674
VERSION_TEXT = "5.01 Build 9674 (vpncluster 0.1.0)"


class DynamicInstances:
    """The dynamic hubs the controller placed on this node (lower-case
    names). The data plane runs a dynamic hub only while it is here, and is
    told of every change through `watch`."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def set(self, hub: str, running: bool) -> None:
        """Place (`running`) or remove `hub` here; watchers hear of a change."""
        key = hub.lower()
        if (key in self._names) == running:
            return
        if running:
            self._names.add(key)
        else:
            self._names.discard(key)
        self._changed()

    def clear(self) -> None:
        """Remove every placement (the role that made them ended)."""
        if self._names:
            self._names.clear()
            self._changed()

    def __contains__(self, hub: object) -> bool:
        return isinstance(hub, str) and hub.lower() in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (set, frozenset)):
            return self._names == other
        return NotImplemented

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()


@dataclass(eq=False)
class VpnServer:
    state: NodeState
    state_dir: Path
    cert_der: bytes
    started_at: float = field(default_factory=time.time)
    hostname: str = field(default_factory=socket.gethostname)
    hubs: dict[str, RunningHub] = field(default_factory=dict)
    """The hubs running on this node (the data plane keeps it): lower-case name → hub."""
    dynamic_instances: DynamicInstances = field(default_factory=DynamicInstances)
    tickets: TicketBook = field(default_factory=TicketBook)
    """One-time tickets the controller asked this member to store (redeemed at login)."""
    routes: dict[tuple[str, str], RouteHandler] = field(default_factory=dict)
    """Extra plain-HTTP routes of the listener, (METHOD, lower-case path) → handler."""
    admin_backoff: AuthBackoff = field(default_factory=AuthBackoff)
    """Failed admin API logins per source address (node/admin/api.py)."""
    vpn_login_backoff: AuthBackoff = field(default_factory=AuthBackoff)
    """Failed VPN logins per source address (node/dataplane/vpn_handler.py)."""
    connections: ConnectionRegistry = field(default_factory=ConnectionRegistry)
    """The listener's TCP connections that are not (yet) VPN sessions (node/connections.py)."""
    tls_cipher: CipherSetting | None = None
    """The listeners' TLS cipher setting (SetServerCipher; node/tls_cipher.py); None before they start."""
    cluster: ClusterRoles = field(init=False)
    """The running cluster role (node/cluster/roles.py)."""
    metrics: NodeMetrics = field(init=False)
    """This node's Prometheus metrics (node/metrics.py)."""

    def __post_init__(self) -> None:
        self.cluster = ClusterRoles(self)
        self.metrics = NodeMetrics(self)

    def running_hub(self, name: str) -> RunningHub | None:
        """The running hub named `name` (any case), or None."""
        return self.hubs.get(name.lower())

    def session_count(self) -> int:
        return sum(h.session_count() for h in self.hubs.values())

    def tcp_connection_count(self) -> int:
        return sum(h.tcp_connection_count() for h in self.hubs.values())

    def os_info(self) -> dict[str, str | int]:
        uname = platform.uname()
        return {"system": uname.system, "release": uname.release, "version": uname.version,
                "machine": uname.machine, "pid": os.getpid()}
