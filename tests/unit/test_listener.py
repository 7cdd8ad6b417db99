"""The listener's connection caps (node/listener.py ConnectionLimits): an
in-process Listener on loopback with small caps; clients from several
127.0.0.x source addresses."""

from __future__ import annotations

import asyncio

import pytest

from node.listener import CLOSE_WAIT_S, HANDSHAKE_TIMEOUT_S, ConnectionLimits, HandshakeSlots, Listener
from node.state.tlscert import client_context, ensure_certificate, server_context
from tests.unit.dataplane.fakes import make_server

pytestmark = pytest.mark.timeout(60)


def test_limits_core_counts_per_ip_and_pending():
    limits = ConnectionLimits(per_ip=2, unestablished=3)
    a, b, c, d = object(), object(), object(), object()
    assert limits.admit("10.0.0.1", a) is None and limits.admit("10.0.0.1", b) is None
    assert "from 10.0.0.1" in limits.admit("10.0.0.1", c)
    assert limits.admit("10.0.0.2", c) is None
    assert "not yet established" in limits.admit("10.0.0.3", d)
    limits.established(a)                      # a VPN session: no longer pending
    assert limits.admit("10.0.0.3", d) is None
    assert limits.connections_from("10.0.0.1") == 2 and limits.pending() == 3
    limits.closed("10.0.0.1", a)
    limits.closed("10.0.0.1", b)
    assert limits.connections_from("10.0.0.1") == 0 and limits.pending() == 2


async def _until(check, what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def _get_root(port: int, source: str) -> bytes:
    """GET / over TLS from `source`; the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(),
                                                   local_addr=(source, 0), ssl_handshake_timeout=10)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def _raw(port: int, source: str):
    """A TCP connection that never starts TLS."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _started(tmp_path, limits: ConnectionLimits) -> tuple[Listener, int]:
    cert, key = ensure_certificate(tmp_path)
    listener = Listener(make_server(tmp_path), server_context(cert, key), limits)
    await listener.listen("127.0.0.1", 0)
    return listener, listener._servers[0].sockets[0].getsockname()[1]


def test_per_ip_cap_refuses_only_that_address(tmp_path):
    async def scenario():
        limits = ConnectionLimits(per_ip=2, unestablished=100)
        listener, port = await _started(tmp_path, limits)
        try:
            stalled = [await _raw(port, "127.0.0.1") for _ in range(2)]
            await _until(lambda: limits.connections_from("127.0.0.1") == 2, "two admitted")
            with pytest.raises(OSError):
                await _get_root(port, "127.0.0.1")
            assert (await _get_root(port, "127.0.0.2")).startswith(b"HTTP/1.1 200")
            stalled[0][1].close()
            await _until(lambda: limits.connections_from("127.0.0.1") == 1, "one closed")
            assert (await _get_root(port, "127.0.0.1")).startswith(b"HTTP/1.1 200")
            stalled[1][1].close()
        finally:
            await listener.close()
        assert limits.pending() == 0 and limits.connections_from("127.0.0.1") == 0
    asyncio.run(scenario())


def test_unestablished_cap_spares_vpn_sessions(tmp_path):
    async def scenario():
        limits = ConnectionLimits(per_ip=100, unestablished=2)
        listener, port = await _started(tmp_path, limits)
        release = asyncio.Event()

        async def vpn_handler(conn, request, reader, writer, peer, on_session):
            on_session()                # logged in: a VPN session now
            await release.wait()        # a long-lived VPN session
        listener.vpn_handler = vpn_handler
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context())
            writer.write(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            await _until(lambda: limits.connections_from("127.0.0.1") == 1 and limits.pending() == 0,
                         "the VPN session no longer pending")
            stalled = [await _raw(port, f"127.0.0.{n}") for n in (2, 3)]
            await _until(lambda: limits.pending() == 2, "two pending")
            with pytest.raises(OSError):
                await _get_root(port, "127.0.0.4")
            for _, w in stalled:
                w.close()
            await _until(lambda: limits.pending() == 0, "the stalled ones gone")
            assert (await _get_root(port, "127.0.0.4")).startswith(b"HTTP/1.1 200")
            release.set()
            writer.close()
        finally:
            await listener.close()
    asyncio.run(scenario())


def test_close_does_not_wait_for_a_peer_that_stopped_reading(tmp_path):
    # A kept-alive admin connection whose client reads nothing: at shutdown
    # the listener aborts it instead of waiting CLOSE_WAIT_S for the peer to
    # take our close_notify (the servers' wait_closed() waits for every
    # transport, so vpnd would outlive a SIGTERM by that long).
    async def scenario():
        listener, port = await _started(tmp_path, ConnectionLimits(per_ip=8, unestablished=8))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(),
                                                       ssl_handshake_timeout=10)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
        writer.transport.pause_reading()   # from now on the client reads nothing
        try:
            await asyncio.wait_for(listener.close(), CLOSE_WAIT_S / 2)
        finally:
            writer.transport.abort()
    asyncio.run(scenario())


def test_a_connection_that_waited_for_a_handshake_slot_still_completes_its_handshake(tmp_path):
    # One handshake slot, several clients at once: the ones that wait have
    # sent their ClientHello already. It must reach TLS when their turn
    # comes (read before, it was lost and the handshake stalled until
    # HANDSHAKE_TIMEOUT_S: 300 connects of a burst took 16 s instead of 2).
    async def scenario():
        cert, key = ensure_certificate(tmp_path)
        listener = Listener(make_server(tmp_path), server_context(cert, key),
                            ConnectionLimits(per_ip=16, unestablished=16), handshakes=HandshakeSlots(total=1, per_ip=1))
        await listener.listen("127.0.0.1", 0)
        port = listener._servers[0].sockets[0].getsockname()[1]
        try:
            sources = [f"127.0.0.{i}" for i in range(2, 8)]
            lines = await asyncio.wait_for(asyncio.gather(*(_get_root(port, s) for s in sources)),
                                           HANDSHAKE_TIMEOUT_S / 2)
            assert all(line.startswith(b"HTTP/1.1 200") for line in lines), lines
        finally:
            await listener.close()
    asyncio.run(scenario())
