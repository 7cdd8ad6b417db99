"""A member's end of the bus: BusClient (one CURVE DEALER).

Usage on a member::

    client = await BusClient.start(bus_endpoint, member_keys, controller_key,
                                   handler, on_event=on_bus_event)
    # on PeerSeen(controller_key): (re)join, then push the whole state
    reply = await client.request(Join(...), timeout_s=2.0)
    client.notify(Status(...))
    await client.close()

libzmq reconnects by itself; nothing is queued while the controller is away
(sends raise QueueFull), and heartbeats continue so the controller learns of
the member within one interval of its return.
"""

from __future__ import annotations

from typing import Any

import zmq

from .endpoint import BusConfig, Endpoint, EventCallback, Handler, Heartbeat
from .envelope import BadMessage, Reason
from .keys import Keypair
from .sockets import BusError, make_dealer


class BusClient(Endpoint):
    """A member's end: one CURVE DEALER pinned to the controller's key."""

    def __init__(self, keys: Keypair, server_public: str, handler: Handler, *,
                 on_event: EventCallback | None = None, config: BusConfig = BusConfig()) -> None:
        super().__init__(keys, handler, on_event, config)
        self.server = server_public

    @classmethod
    async def start(cls, endpoint: str, keys: Keypair, server_public: str, handler: Handler, *,
                    on_event: EventCallback | None = None,
                    config: BusConfig = BusConfig()) -> BusClient:
        """Connect (libzmq keeps reconnecting by itself). ValueError for a bad key."""
        self = cls(keys, server_public, handler, on_event=on_event, config=config)
        try:
            self._sock = make_dealer(self._ctx, keys, server_public, endpoint, config.socket)
        except BaseException:
            self._closed = True
            self._ctx.destroy(linger=0)
            raise
        self._liveness.watch(server_public, self._loop.time())
        self._start_loops()
        return self

    @property
    def connected(self) -> bool:
        """True while the controller is heard from within the silence timeout."""
        return self.server in self._liveness.peers

    async def request(self, msg: Any, timeout_s: float | None = None) -> Any:
        """Send ``msg`` to the controller and await its reply message.

        Raises RequestTimeout, RemoteError, QueueFull (not connected), BusClosed.
        """
        return await self._request(self.server, msg, timeout_s)

    def notify(self, msg: Any) -> None:
        """One-way message to the controller. Raises QueueFull, BusClosed."""
        self._notify(self.server, msg)

    def _frames(self, peer: str, payload: bytes) -> list[bytes]:
        return [payload]

    def _unframe(self, frames: list[zmq.Frame]) -> tuple[str, zmq.Frame] | None:
        if len(frames) != 1:
            self._drop(self.server, BadMessage(Reason.BAD_FRAMES, f"{len(frames)} frames"))
            return None
        return self.server, frames[0]

    def _on_monitor(self, name: str) -> None:
        if name == "handshake_succeeded":
            # Say hello at once so the controller can route to us without
            # waiting a heartbeat interval after each (re)connection.
            try:
                self._notify(self.server, Heartbeat())
            except BusError:
                pass
