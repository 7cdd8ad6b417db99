"""The controller's end of the bus: BusServer (one CURVE ROUTER).

Usage on the controller::

    policy = KeyPolicy(known_member_keys, allow_any=True)   # join needs any key
    server = await BusServer.start("tcp://0.0.0.0:5555", keys, handler,
                                   policy=policy, on_event=on_bus_event)
    reply = await server.request(member_key, PollStatus(), timeout_s=1.0)
    server.notify(member_key, DeleteHub(name="HUB1"))
    await server.close()

``handler(peer_key, message)`` receives members' requests/notifications; see
endpoint.py for the contract. When a connection closes, every live peer is
sent a heartbeat: one with no route left is reported ``PeerGone`` at once.
A peer is its CURVE key (the ZAP User-Id of each frame); messages to it go
to the routing id its latest frame came with, which is a secret the member
chose (sockets.new_routing_id), so another peer cannot receive them by
claiming that member's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq

from .endpoint import BusConfig, Endpoint, EventCallback, Handler, LivenessEvent
from .envelope import BadMessage, Reason
from .keys import Keypair
from .requests import PeerGone, PeerSilent
from .sockets import KeyPolicy, PeerUnreachable, make_router, start_authenticator
from .zap import ZapAuthenticator

_MAX_ADDRESSES = 4096


def _property(frame: zmq.Frame, name: str) -> str:
    """A metadata property of the connection `frame` came on (zmq_msg_gets);
    ZMQError if it has none."""
    value = frame.get(name)
    assert isinstance(value, str)  # pyzmq types it int | str: int only for numeric options
    return value


class BusServer(Endpoint):
    """The controller's end: one CURVE ROUTER, ZAP by :class:`KeyPolicy`."""

    def __init__(self, keys: Keypair, handler: Handler, *, policy: KeyPolicy | None = None,
                 on_event: EventCallback | None = None, config: BusConfig = BusConfig()) -> None:
        super().__init__(keys, handler, on_event, config)
        self.policy = policy if policy is not None else KeyPolicy()
        self._auth: ZapAuthenticator | None = None
        self._addresses: dict[str, str] = {}
        self._routes: dict[str, bytes] = {}
        self.endpoint = ""

    @classmethod
    async def start(cls, endpoint: str, keys: Keypair, handler: Handler, *,
                    policy: KeyPolicy | None = None, on_event: EventCallback | None = None,
                    config: BusConfig = BusConfig()) -> BusServer:
        """Bind ``endpoint`` (``tcp://127.0.0.1:0`` picks a free port; the real
        one is in ``.endpoint``). Raises zmq.ZMQError if the bind fails."""
        self = cls(keys, handler, policy=policy, on_event=on_event, config=config)
        try:
            self._auth = start_authenticator(self._ctx, self.policy)
            self._sock = make_router(self._ctx, keys, endpoint, config.socket)
        except BaseException:
            self._closed = True
            if self._auth is not None:
                self._auth.stop()
            self._ctx.destroy(linger=0)
            raise
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._start_loops()
        return self

    def _close_sockets(self) -> None:
        super()._close_sockets()
        if self._auth is not None:
            self._auth.stop()

    async def request(self, peer: str, msg: Any, timeout_s: float | None = None) -> Any:
        """Send ``msg`` to ``peer`` and await its reply message.

        Raises RequestTimeout, RemoteError, PeerUnreachable, QueueFull, BusClosed.
        """
        return await self._request(peer, msg, timeout_s)

    def notify(self, peer: str, msg: Any) -> None:
        """Send a one-way message. Raises PeerUnreachable, QueueFull, BusClosed."""
        self._notify(peer, msg)

    def forget(self, peer: str) -> None:
        """Stop heartbeating/watching ``peer`` (e.g. an evicted member)."""
        self._liveness.forget(peer)
        self._addresses.pop(peer, None)
        self._routes.pop(peer, None)

    def peer_address(self, peer: str) -> str | None:
        """The IP address (libzmq's Peer-Address, no port) a live peer's
        messages come from, or None if the peer is not live."""
        return self._addresses.get(peer)

    def _emit(self, events: Sequence[LivenessEvent]) -> None:
        for event in events:
            if isinstance(event, (PeerSilent, PeerGone)):
                self._addresses.pop(event.peer, None)
        super()._emit(events)

    def _on_monitor(self, name: str) -> None:
        if name == "disconnected":
            # Some member may be gone: find out by routes now instead of
            # waiting out its silence (a killed member's TCP closes at once).
            self._liveness.connection_closed(self._loop.time())
            self._transmit()

    def _frames(self, peer: str, payload: bytes) -> list[bytes]:
        route = self._routes.get(peer)
        if route is None:
            raise PeerUnreachable(f"no connection from {peer[:8]}...")
        return [route, payload]

    def _unframe(self, frames: list[zmq.Frame]) -> tuple[str, zmq.Frame] | None:
        try:
            peer = _property(frames[-1], "User-Id")
        except zmq.ZMQError:
            peer = "?"
        if len(frames) != 2:
            self._drop(peer, BadMessage(Reason.BAD_FRAMES, f"{len(frames)} frames"))
            return None
        route = frames[0].bytes
        if self._routes.get(peer) != route and self._room_for(self._routes, peer):
            self._routes[peer] = route
        # Read once per live episode.
        if peer not in self._addresses and self._room_for(self._addresses, peer):
            try:
                self._addresses[peer] = _property(frames[-1], "Peer-Address")
            except zmq.ZMQError:
                pass
        return peer, frames[1]

    def _room_for(self, table: dict[str, Any], peer: str) -> bool:
        """True if ``table`` may hold ``peer``. At the cap, entries of peers
        that are not live (keys that only ever sent garbage) make room first."""
        if peer in table or len(table) < _MAX_ADDRESSES:
            return True
        live = self._liveness.peers
        for stale in [p for p in table if p not in live]:
            del table[stale]
        return len(table) < _MAX_ADDRESSES
