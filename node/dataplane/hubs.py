"""Running hubs: the configured Virtual Hubs that run on this node.

"Hub" names four things in vpncluster; this module is the third:
- `model.Hub` (node/state/model.py): a hub as configured (name, type, users);
- `VirtualHub` (virtual_hub.py): the forwarding part, a switch and its ports;
- `RunningHub` (here): the running hub of THIS node -- one `VirtualHub`, the
  VPN sessions attached to it by name, the bridge sessions of its local
  bridges, its session-name counter and traffic totals;
- `controller.registry.HubInstance`: the controller's record of a hub
  instance some member reported.

`VpnServer.hubs` maps the lower-cased hub name to its `RunningHub`. The
VPN session handler registers its
sessions here; the session only learns how to leave (`VpnSession.attached`),
so this module depends on session.py and never the other way round
(hubs → session → bridge → virtual_hub → switch, tested by
tests/unit/dataplane/test_imports.py).

Which configured hubs get an instance on this node is decided in one place,
`hosted_hubs()`. Standalone mode: every online hub (SoftEther keeps an
offline hub object but refuses sessions to it; we simply run no instance, so
an offline hub has no sessions and empty tables). Cluster placement will
change that one function.

Session names follow SoftEther (Session.c): "SID-<USER NAME UPPER>-<n>" with
one counter per hub starting at 1, shared by every kind of session, so a
local bridge is "SID-LOCALBRIDGE-<n>" (its user name is "localbridge"),
named when the bridge starts on the hub even if its device cannot be opened
(checked against SoftEther 5.01: a bridge to a missing NIC is listed as
SID-LOCALBRIDGE-n and counted in the hub's NumSessions).
SoftEther keeps an offline hub's counter; the data plane carries it over to
the hub's next instance (`sessions_before`) for the life of the process.

Traffic of a hub is the sum over its ports of what the switch counted, plus
what ports that have left had counted, so the hub total never goes down.
Switch times are monotonic; `wall()` converts them for the admin API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable

from node.dataplane.bridge import LocalBridge
from node.dataplane.switch import Traffic, UnknownPort
from node.dataplane.virtual_hub import Port, VirtualHub
from node.state import model

if TYPE_CHECKING:
    from node.dataplane.session import VpnSession

log = logging.getLogger(__name__)

BRIDGE_USER_NAME = "localbridge"   # SoftEther's BRIDGE_USER_NAME
TRAFFIC_FIELDS = (
    ("Recv.BroadcastBytes", "recv_broadcast_bytes"), ("Recv.BroadcastCount", "recv_broadcast_count"),
    ("Recv.UnicastBytes", "recv_unicast_bytes"), ("Recv.UnicastCount", "recv_unicast_count"),
    ("Send.BroadcastBytes", "send_broadcast_bytes"), ("Send.BroadcastCount", "send_broadcast_count"),
    ("Send.UnicastBytes", "send_unicast_bytes"), ("Send.UnicastCount", "send_unicast_count"),
)


def hosted_hubs(config: model.Server, dynamic_instances: Collection[str] = ()) -> list[model.Hub]:
    """The configured hubs that get an instance on this node.

    Standalone: every online hub. Cluster modes: every online static hub (an
    instance on every server), and the online dynamic hubs the controller
    placed here (`dynamic_instances`, lower-case names)."""
    if config.farm.server_type == model.SERVER_STANDALONE:
        return [hub for hub in config.hubs if hub.online]
    return [hub for hub in config.hubs if hub.online and (
        hub.hub_type == model.HUB_STATIC
        or (hub.hub_type == model.HUB_DYNAMIC and hub.name.lower() in dynamic_instances))]


def traffic_dict(traffic: Traffic) -> dict[str, int]:
    """A switch `Traffic` as SoftEther's TRAFFIC names ("Recv.UnicastBytes", ...)."""
    return {key: getattr(traffic, attr) for key, attr in TRAFFIC_FIELDS}


@dataclass(frozen=True, slots=True, kw_only=True)
class DroppedFrames:
    """Frames a running hub dropped since it started, by cause (sessions that
    have left included)."""

    queue_full: int
    """A session's send queue was full (a congested port)."""
    oversize: int
    """Frames no VPN session can carry (empty, or over MAX_PACKET_SIZE)."""
    no_destination: int
    """Nowhere to go: a flood with no other port, a unicast back to its own port."""
    mac_table_full: int
    """A new source MAC while the MAC table was full."""
    malformed: int
    """Runts, and frames with a group source MAC."""


class RunningHub:
    """The running hub of one configured hub on this node (module prose).

    Sessions register with `add_session` once authenticated (which hands
    each session `remove_session` as the way to leave) and leave with it
    when they end (idempotent). `hub` is its VirtualHub. Closing the running hub
    detaches every port but closes none: the data plane closes sessions and
    bridges itself (sessions asynchronously, through `session.close`)."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, sessions_before: int = 0,
                 **hub_kwargs: Any) -> None:
        self.name = name
        self.hub_type = model.HUB_STANDALONE
        """The type of the configured hub this instance runs (sync_instances
        sets it; a type change restarts the instance)."""
        self.hub = VirtualHub(name, clock=clock, **hub_kwargs)
        self.sessions: dict[str, "VpnSession"] = {}
        self.bridges: dict[str, BridgeSession] = {}  # by bridge key (service.bridge_key)
        self._clock = clock
        self._wall_clock = wall_clock
        self._counter = sessions_before
        self._retired: dict[str, int] = dict.fromkeys((k for k, _ in TRAFFIC_FIELDS), 0)
        self._retired_queue_full = self._retired_oversize = 0   # drops of sessions that left
        self.closed = False
        self._closing: set[asyncio.Task] = set()   # strong refs until each close ends

    # ---- life ------------------------------------------------------------------

    def start(self) -> None:
        """Start MAC/IP aging (needs a running loop)."""
        self.hub.start()

    def close(self) -> None:
        """Stop aging and detach every port. Sessions stay in `sessions` until
        they call `remove_session` from their own close."""
        self.closed = True
        for port in self.hub.ports:
            self._retire(port)
        self.hub.close()

    # ---- sessions --------------------------------------------------------------

    @property
    def sessions_named(self) -> int:
        """How many session names this hub has given out (its counter)."""
        return self._counter

    def next_session_name(self, username: str) -> str:
        """"SID-<USERNAME>-<n>": n counts every session of this hub from 1."""
        self._counter += 1
        return f"SID-{username.upper()}-{self._counter}"

    def add_session(self, session: "VpnSession") -> None:
        """Register `session`, attach it to `self.hub` as a port and tell it to
        leave through `remove_session` (`session.attached`).

        Raises ValueError if its name (or port id) is taken, RuntimeError if the
        running hub is closed (the hub went offline meanwhile)."""
        if self.closed:
            raise RuntimeError(f"hub {self.name} is not running")
        if session.name in self.sessions:
            raise ValueError(f"session {session.name} exists on hub {self.name}")
        self.hub.attach(session)
        self.sessions[session.name] = session
        session.attached(self.remove_session)

    def remove_session(self, session: "VpnSession") -> None:
        """Detach `session` and forget its MAC/IP entries; a session not
        registered (or already removed) is ignored -- even one whose name
        clashed with a registered session, which must stay attached."""
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
            self._detach(session)
            self._retired_queue_full += session.dropped_queue_full
            self._retired_oversize += session.dropped_oversize

    def find_session(self, name: str) -> "VpnSession | None":
        """A session by name, case-insensitively as SoftEther's GetSessionByName."""
        found = self.sessions.get(name)
        if found is not None:
            return found
        key = name.lower()
        return next((s for n, s in self.sessions.items() if n.lower() == key), None)

    def close_sessions(self, reason: str) -> list[asyncio.Task]:
        """Start closing every session (each `await session.close(reason)` in
        its own task); returns the tasks. Needs a running loop."""
        return [self.disconnect(s, reason) for s in list(self.sessions.values())]

    def disconnect(self, session: "VpnSession", reason: str) -> asyncio.Task:
        """Start `await session.close(reason)` in a task (the session removes
        itself from the hub as it ends). Needs a running loop."""
        task = asyncio.ensure_future(_close_session(session, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return task

    # ---- local bridges -----------------------------------------------------------

    def place_bridge(self, key: str, device: str) -> "BridgeSession":
        """The bridge session of bridge `key` on this hub, named on first call
        (SoftEther names it when the bridge starts, before its device opens)."""
        found = self.bridges.get(key)
        if found is None:
            found = self.bridges[key] = BridgeSession(self.next_session_name(BRIDGE_USER_NAME), device)
        return found

    def attach_bridge(self, key: str, port: LocalBridge) -> None:
        """Record the open device of a placed bridge (`port` is already
        attached to `self.hub`, under the bridge session's name)."""
        self.bridges[key].port = port

    def detach_bridge(self, key: str) -> LocalBridge | None:
        """Take the device away from a bridge session, which stays listed
        (inactive); returns the port for the caller to close."""
        found = self.bridges.get(key)
        if found is None or found.port is None:
            return None
        port, found.port = found.port, None
        self._detach(port)
        return port

    def remove_bridge(self, key: str) -> LocalBridge | None:
        """End a bridge session; returns its port (if open) for the caller to close."""
        port = self.detach_bridge(key)
        self.bridges.pop(key, None)
        return port

    # ---- ports -------------------------------------------------------------------

    def _detach(self, port: Port) -> None:
        self._retire(port)
        self.hub.detach(port)

    def _retire(self, port: Port) -> None:
        try:
            gone = traffic_dict(self.hub.traffic(port))
        except UnknownPort:
            return
        for key, value in gone.items():
            self._retired[key] += value

    def port_traffic(self, port: Port) -> Traffic | None:
        """The switch's counters for one attached port (None if not attached)."""
        try:
            return self.hub.traffic(port)
        except UnknownPort:
            return None

    # ---- figures for the admin API and the cluster roles ---------------------------------

    def session_count(self) -> int:
        # bridge sessions count, as SoftEther's hub NumSessions (and MaxSession) counts them
        return len(self.sessions) + len(self.bridges)

    def tcp_connection_count(self) -> int:
        return sum(int(s.tcp_connections) for s in self.sessions.values())

    def mac_table_size(self) -> int:
        return self.hub.switch.num_mac_entries

    def ip_table_size(self) -> int:
        return self.hub.switch.num_ip_entries

    def dropped_frames(self) -> DroppedFrames:
        sessions = self.sessions.values()
        switch = self.hub.switch
        return DroppedFrames(
            queue_full=self._retired_queue_full + sum(s.dropped_queue_full for s in sessions),
            oversize=self._retired_oversize + sum(s.dropped_oversize for s in sessions),
            no_destination=switch.dropped_no_destination, mac_table_full=switch.dropped_table_full,
            malformed=switch.dropped_malformed)

    def traffic(self) -> dict[str, int]:
        now = traffic_dict(self.hub.switch.total_traffic())   # every attached port
        return {key: value + now[key] for key, value in self._retired.items()}

    # ---- time ------------------------------------------------------------------

    def wall(self, monotonic_s: float) -> float:
        """A switch time (this hub's monotonic clock) as Unix seconds."""
        return self._wall_clock() - (self._clock() - monotonic_s)


@dataclass(eq=False)
class BridgeSession:
    """A local bridge's session on a hub: listed (BridgeMode) and counted
    from when the bridge is placed on the running hub; `port` is its open
    device, None while the device cannot be opened (Online, not Active)."""

    name: str
    device: str
    port: LocalBridge | None = None
    created_time: float = field(default_factory=time.time)   # wall clock
    session_key: bytes = field(default_factory=lambda: os.urandom(20))

    @property
    def active(self) -> bool:
        return self.port is not None and self.port.active


async def _close_session(session: "VpnSession", reason: str) -> None:
    try:
        await session.close(reason)
    except Exception:  # one session failing to close must not stop the others
        log.exception("session %s failed to close", session.name)


def sync_instances(instances: dict[str, RunningHub], wanted: Iterable[model.Hub],
                   factory: Callable[[str], RunningHub]) -> tuple[list[RunningHub], list[RunningHub]]:
    """Make `instances` (lower-case name → instance) match `wanted`: create the
    missing ones with `factory(name)` (and record the hub's type on them),
    take out the ones no longer wanted. An instance whose hub changed type is
    restarted: taken out and created again, so its sessions are disconnected
    and their clients reconnect through the controller -- SoftEther's member
    does the same (Server.c SiCalledUpdateHub: "Remove all sessions since the
    type of HUB has been changed", SetHubOffline + SetHubOnline).
    Returns (created, removed); the caller starts/stops them."""
    want = {hub.name.lower(): hub for hub in wanted}
    removed = [instances.pop(key) for key in list(instances)
               if key not in want or instances[key].hub_type != want[key].hub_type]
    created = []
    for key, hub in want.items():
        if key not in instances:
            instance = instances[key] = factory(hub.name)
            instance.hub_type = hub.hub_type
            created.append(instance)
    return created, removed
