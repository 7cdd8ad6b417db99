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
