"""The Virtual Hub: one `Switch` core (switch.py) and the ports attached to it.

A port hands the hub a batch of frames (`hub.input(port, frames)`); the hub
reads the clock once, forwards the batch through the core and calls each out
port's `send_frames` exactly once with that port's frames in order. VPN
sessions (session.py) and local bridges (bridge.py) are both ports; the hub
knows them only through the `Port` protocol, so this module imports nothing
of the data plane but the switch.

Every `aging_interval_s` (5 s) a timer lets the core age its MAC and IP
tables. A batch from a port no longer attached (in flight while it left) is
dropped and counted; a port whose `send_frames` raises is counted and
logged, and delivery to the other ports goes on.

"Hub" in the data plane: this `VirtualHub` is the forwarding part only;
hubs.RunningHub is the running hub of this node that owns one (sessions,
bridge sessions, counters); model.Hub is the configured hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Hashable, Iterable, Protocol, runtime_checkable

from node.dataplane.switch import IpTableItem, MacTableItem, Switch, Traffic

log = logging.getLogger(__name__)

AGING_INTERVAL_S = 5.0


@runtime_checkable
class Port(Protocol):
    """Something frames can be switched to: a VPN session or a local bridge.

    `id` is hashable and unique within a hub; `name` is what MAC/IP table
    listings show (SoftEther's SessionName). `send_frames` receives one list
    per hub batch, must not block, and must not call back into `hub.input`
    synchronously (queue instead). `id` and `name` are read-only here, so
    a port may give them narrower types (a session's id is a tuple)."""

    @property
    def id(self) -> Hashable: ...

    @property
    def name(self) -> str: ...

    def send_frames(self, frames: list[bytes]) -> None: ...


class VirtualHub:
    """The forwarding part of one running hub: a switch core plus its ports."""

    def __init__(self, name: str, *, switch: Switch | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 aging_interval_s: float = AGING_INTERVAL_S) -> None:
        self.name = name
        self.switch = switch if switch is not None else Switch()
        self._clock = clock
        self._ports: dict[Hashable, Port] = {}
        self._aging_interval_s = aging_interval_s
        self._timer: asyncio.TimerHandle | None = None
        self.send_errors = 0
        self.dropped_detached = 0  # batches

    # ---- ports ---------------------------------------------------------------

    def attach(self, port: Port) -> None:
        """Add a port (raises ValueError if its id is taken)."""
        self.switch.add_port(port.id, port.name)
        self._ports[port.id] = port

    def detach(self, port: Port) -> None:
        """Remove a port and its MAC/IP entries; a port not attached is ignored."""
        if self._ports.pop(port.id, None) is not None:
            self.switch.remove_port(port.id)

    @property
    def ports(self) -> list[Port]:
        return list(self._ports.values())

    # ---- packet path -----------------------------------------------------------

    def input(self, port: Port, frames: Iterable[bytes]) -> None:
        """Switch a batch of frames received from `port`. Frames from a port
        no longer attached (a batch in flight while it was detached) are
        dropped and counted in `dropped_detached`."""
        ports = self._ports
        if port.id not in ports:
            self.dropped_detached += 1
            return
        out = self.switch.forward_batch(port.id, frames, self._clock())
        for pid, batch in out.items():
            try:
                ports[pid].send_frames(batch)
            except Exception:  # one broken port must not stop delivery to the others
                self.send_errors += 1
                log.exception("hub %s: port %s failed to send", self.name, ports[pid].name)

    # ---- aging timer ---------------------------------------------------------

    def start(self) -> None:
        """Start the aging timer on the running loop."""
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._aging_interval_s, self._on_timer)

    def _on_timer(self) -> None:
        self.switch.handle_timer(self._clock())
        self._arm()

    def close(self) -> None:
        """Stop the timer and detach every port (ports are not closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for port in list(self._ports.values()):
            self.detach(port)

    # ---- listings --------------------------------------------------------------

    def mac_table(self) -> list[MacTableItem]:
        return self.switch.mac_table()

    def ip_table(self) -> list[IpTableItem]:
        return self.switch.ip_table()

    def traffic(self, port: Port) -> Traffic:
        return self.switch.traffic(port.id)
