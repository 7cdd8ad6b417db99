"""Bus discovery on the member side (node/cluster/member_discovery.py): the
answer's checks from a table, and the HTTPS edge against tiny loopback servers
that answer well, badly, not at all, or not in TLS."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from node.cluster.member_discovery import MAX_ANSWER_BYTES, DiscoveryFailed, discover, parse_answer
from node.softether.errors import Err
from node.state.tlscert import ensure_certificate, server_context
from vpnbus.keys import new_keypair

pytestmark = pytest.mark.timeout(30)
KEY = new_keypair().public


def doc(**fields) -> bytes:
    base = {"bus_port": 5000, "controller_key": KEY, "version": 1}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_good_answer():
    assert parse_answer(200, doc()) == (5000, KEY)


@pytest.mark.parametrize("status, body, code", [
    (404, b"not found", Err.NOT_FARM_CONTROLLER),
    (500, doc(), Err.PROTOCOL_ERROR),
    (200, b"", Err.PROTOCOL_ERROR),
    (200, b"\xff\xfe", Err.PROTOCOL_ERROR),
    (200, b"[1, 2]", Err.PROTOCOL_ERROR),
    (200, b"null", Err.PROTOCOL_ERROR),
    (200, doc(version=2), Err.PROTOCOL_ERROR),
    (200, doc(version=None), Err.PROTOCOL_ERROR),
    (200, doc(bus_port=0), Err.PROTOCOL_ERROR),
    (200, doc(bus_port=65536), Err.PROTOCOL_ERROR),
    (200, doc(bus_port="5000"), Err.PROTOCOL_ERROR),
    (200, doc(bus_port=True), Err.PROTOCOL_ERROR),
    (200, doc(bus_port=None), Err.PROTOCOL_ERROR),
    (200, doc(controller_key="short"), Err.PROTOCOL_ERROR),
    (200, doc(controller_key=None), Err.PROTOCOL_ERROR),
    (200, doc(controller_key=12), Err.PROTOCOL_ERROR),
])
def test_bad_answers_are_typed_errors(status, body, code):
    with pytest.raises(DiscoveryFailed) as failed:
        parse_answer(status, body)
    assert failed.value.code == code


async def serve(tmp_path, answer: bytes | None, tls: bool = True) -> asyncio.Server:
    """A one-shot server: reads the request head, sends `answer` (None: say nothing)."""
    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                await asyncio.sleep(30)
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    ctx = server_context(*ensure_certificate(tmp_path)) if tls else None
    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)


def http(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def discover_from(tmp_path, answer: bytes | None, tls: bool = True, timeout_s: float = 3.0):
    async def main():
        server = await serve(tmp_path, answer, tls)
        try:
            return await discover("127.0.0.1", server.sockets[0].getsockname()[1], timeout_s)
        finally:
            server.close()
    return asyncio.run(main())


def test_discovers_bus_port_key_and_addresses(tmp_path):
    found = discover_from(tmp_path, http("200 OK", doc(bus_port=4242)))
    assert (found.bus_port, found.controller_key) == (4242, KEY)
    assert found.controller_ip == found.local_ip == "127.0.0.1"


def test_not_a_controller(tmp_path):
    with pytest.raises(DiscoveryFailed) as failed:
        discover_from(tmp_path, http("404 Not Found", b"no"))
    assert failed.value.code == Err.NOT_FARM_CONTROLLER


def test_oversized_answer_is_refused(tmp_path):
    with pytest.raises(DiscoveryFailed) as failed:
        discover_from(tmp_path, http("200 OK", b" " * (MAX_ANSWER_BYTES + 1)))
    assert failed.value.code == Err.PROTOCOL_ERROR


def test_garbage_instead_of_http(tmp_path):
    with pytest.raises(DiscoveryFailed) as failed:
        discover_from(tmp_path, b"\x00\x01garbage\r\n\r\n")
    assert failed.value.code == Err.PROTOCOL_ERROR


def test_silent_server_times_out(tmp_path):
    with pytest.raises(DiscoveryFailed) as failed:
        discover_from(tmp_path, None, timeout_s=0.5)
    assert failed.value.code == Err.CONNECT_TO_FARM_CONTROLLER


def test_plain_tcp_server_is_unreachable_as_a_controller(tmp_path):
    with pytest.raises(DiscoveryFailed) as failed:
        discover_from(tmp_path, http("200 OK", doc()), tls=False, timeout_s=1.0)
    assert failed.value.code == Err.CONNECT_TO_FARM_CONTROLLER


def test_closed_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DiscoveryFailed) as failed:
        asyncio.run(discover("127.0.0.1", port, 2.0))
    assert failed.value.code == Err.CONNECT_TO_FARM_CONTROLLER
