"""The listener against hostile HTTP (issue 13, findings 3, 4, 5): an
in-process Listener on loopback, real TLS clients."""

from __future__ import annotations

import asyncio

import pytest

from node.listener import MAX_HEAD_BYTES, ConnectionLimits, HandshakeSlots, Listener
from node.state.tlscert import client_context, ensure_certificate, server_context
from tests.unit.dataplane.fakes import make_server

pytestmark = pytest.mark.timeout(60)


async def _started(tmp_path, **kw) -> tuple[Listener, int]:
    cert, key = ensure_certificate(tmp_path)
    listener = Listener(make_server(tmp_path), server_context(cert, key), ConnectionLimits(), **kw)
    await listener.listen("127.0.0.1", 0)
    return listener, listener._servers[0].sockets[0].getsockname()[1]


async def _exchange(port: int, request: bytes, source: str = "127.0.0.1") -> bytes:
    """Send `request` over TLS in one write; the answer's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(),
                                                   local_addr=(source, 0), ssl_handshake_timeout=10)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()


def test_a_head_over_the_limit_is_refused_even_when_it_arrives_whole(tmp_path):
    """Finding 4: h11 bounds a head that arrives in pieces only; a 60 KB
    password header in one read went through (to be hashed)."""
    async def scenario():
        listener, port = await _started(tmp_path)
        try:
            big = (b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-VPNADMIN-PASSWORD: "
                   + b"p" * 60_000 + b"\r\n\r\n{}")
            assert (await _exchange(port, big)).startswith(b"HTTP/1.1 431")
            fits = (b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-VPNADMIN-PASSWORD: "
                    + b"p" * (MAX_HEAD_BYTES - 200) + b"\r\n\r\n{}")
            assert (await _exchange(port, fits)).startswith(b"HTTP/1.1 401")
        finally:
            await listener.close()
    asyncio.run(scenario())


def _preflight(origin: str) -> bytes:
    return (b"OPTIONS /api/ HTTP/1.1\r\nHost: x\r\nOrigin: " + origin.encode()
            + b"\r\nAccess-Control-Request-Method: POST\r\n\r\n")


def test_no_cross_origin_access_unless_the_origin_is_configured(tmp_path):
    """Finding 5: any Origin was reflected with credentials allowed."""
    async def scenario():
        listener, port = await _started(tmp_path)
        try:
            head = (await _exchange(port, _preflight("https://evil.example"))).lower()
            assert head.startswith(b"http/1.1 200") and b"access-control-allow-origin" not in head
            assert b"access-control-allow-credentials" not in head
        finally:
            await listener.close()
        listener, port = await _started(tmp_path, cors_origins=frozenset({"https://admin.example"}))
        try:
            head = (await _exchange(port, _preflight("https://admin.example"))).lower()
            assert b"access-control-allow-origin: https://admin.example" in head
            head = (await _exchange(port, _preflight("https://evil.example"))).lower()
            assert b"access-control-allow-origin" not in head
        finally:
            await listener.close()
    asyncio.run(scenario())


def test_one_address_stalling_handshakes_cannot_take_every_slot(tmp_path):
    """Finding 3: handshakes run a bounded number at a time, and an address
    that opens connections and never sends a ClientHello holds only its
    share of them."""
    async def scenario():
        listener, port = await _started(tmp_path)
        listener._handshakes = HandshakeSlots(total=4, per_ip=2)
        try:
            stalled = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
                       for _ in range(10)]
            await asyncio.sleep(0.2)
            for n in (3, 4):   # two other addresses still get through, one after the other
                head = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", source=f"127.0.0.{n}")
                assert head.startswith(b"HTTP/1.1 200")
            for _, writer in stalled:
                writer.close()
        finally:
            await listener.close()
    asyncio.run(scenario())
