"""tools/vpnclient/connection.connect: the TCP source address option."""

import asyncio

import pytest

from tools.vpnclient.connection import ConnectFailed, connect
from tools.vpnclient.login import PasswordLogin


async def _peer_of_one_connect(local_address: str | None) -> str:
    """The source IP a plain TCP server on 127.0.0.1 sees for connect(); the
    server closes at once, so the TLS handshake fails with ConnectFailed."""
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not seen.done():
            seen.set_result(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectFailed):
            await connect("127.0.0.1", port, hub="h", username="u",
                          credentials=PasswordLogin.from_plain("u", "p"), timeout_s=5,
                          local_address=local_address)
        return await asyncio.wait_for(seen, 5)
    finally:
        server.close()
        await server.wait_closed()


def test_connect_uses_the_given_source_address():
    assert asyncio.run(_peer_of_one_connect("127.0.0.7")) == "127.0.0.7"


def test_connect_without_source_address_lets_the_kernel_choose():
    assert asyncio.run(_peer_of_one_connect(None)) == "127.0.0.1"


def test_stop_ends_the_client_even_when_the_cancel_is_lost(monkeypatch):
    """Python 3.11's wait_for can return a login's result and drop the cancel
    that arrived with it: stop() must end the run anyway (and close that
    session) instead of leaving it connected forever."""
    from node.softether.handshake import Hello, Welcome
    from tools.vpnclient import client as client_mod
    from tools.vpnclient.client import ClientConfig, VpnClient
    from tools.vpnclient.login import Welcomed
    from tools.vpnclient.ports import UserspacePort

    class FakeConn:
        def __init__(self) -> None:
            self.server = "127.0.0.1:1"
            self.welcome = Welcome(session_name="SID-T-1", connection_name="CID-1", session_key=bytes(20),
                                   timeout_ms=5000)
            self.closed = asyncio.get_running_loop().create_future()
            self.tunnel = type("T", (), {"recv_frames": 0, "sent_frames": 0, "bursts_out": 0})()

        def set_sink(self, *a, **kw) -> None:
            pass

        def close(self) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

    conns: list = []

    async def login_that_swallows_the_cancel(*a, **kw):
        conn = FakeConn()
        conns.append(conn)
        try:
            await asyncio.Event().wait()  # the login is under way until the client cancels it
        except asyncio.CancelledError:
            pass  # as wait_for's race: the answer wins, the cancel is gone
        return Welcomed(conn.welcome, Hello(random=bytes(20))), conn

    async def main() -> None:
        monkeypatch.setattr(client_mod, "connect", login_that_swallows_the_cancel)
        c = VpnClient(ClientConfig(host="127.0.0.1", port=1, hub="h", username="u", hashed_password=bytes(20)),
                      UserspacePort())
        task = asyncio.ensure_future(c.run())
        for _ in range(1000):  # until the login is under way (<= 10 s)
            if conns:
                break
            await asyncio.sleep(0.01)
        assert conns
        c.stop()
        await asyncio.wait([task], timeout=2)  # (not wait_for: its own cancel would end the run)
        assert task.done() and task.result() == client_mod.EXIT_STOPPED
        assert c.connection is None
        assert conns and conns[0].closed.done()  # the session that came in late is closed
        if not task.done():
            task.cancel()

    asyncio.run(main())
