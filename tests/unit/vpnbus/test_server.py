"""vpnbus/server.py: the bounded route and address tables (fake frames, no sockets)."""

import asyncio

from vpnbus import server as server_mod
from vpnbus.keys import new_keypair
from vpnbus.server import BusServer

A, B, C = (new_keypair().public for _ in range(3))


class FakeFrame:
    """What _unframe reads of a zmq.Frame: bytes and the ZAP/peer properties."""

    def __init__(self, data: bytes, user_id: str = "", address: str = "") -> None:
        self.bytes, self._props = data, {"User-Id": user_id, "Peer-Address": address}

    def get(self, name: str) -> str:
        return self._props[name]


def frames(peer: str, route: bytes, address: str) -> list[FakeFrame]:
    return [FakeFrame(route), FakeFrame(b"payload", peer, address)]


def test_tables_at_the_cap_make_room_by_dropping_peers_that_are_not_live(monkeypatch):
    monkeypatch.setattr(server_mod, "_MAX_ADDRESSES", 2)

    async def run() -> None:
        srv = BusServer(new_keypair(), lambda peer, msg: None)
        try:
            srv._unframe(frames(A, b"ra", "10.0.0.1"))
            srv._unframe(frames(B, b"rb", "10.0.0.2"))
            srv._liveness.heard_from(A, 0.0)  # B only ever sent garbage
            peer, payload = srv._unframe(frames(C, b"rc", "10.0.0.3"))
            assert (peer, payload.bytes) == (C, b"payload")
            assert srv._routes == {A: b"ra", C: b"rc"}
            assert srv._addresses == {A: "10.0.0.1", C: "10.0.0.3"}
            srv._liveness.heard_from(C, 0.0)
            srv._unframe(frames(B, b"rb", "10.0.0.2"))  # full of live peers: B is not kept
            assert set(srv._routes) == set(srv._addresses) == {A, C}
            srv._unframe(frames(A, b"ra2", "10.0.0.9"))  # a known peer's new route replaces the old
            assert srv._routes[A] == b"ra2" and srv.peer_address(A) == "10.0.0.1"
        finally:
            srv._ctx.destroy(linger=0)

    asyncio.run(run())
