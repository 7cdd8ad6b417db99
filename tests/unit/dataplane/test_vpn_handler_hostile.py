"""The VPN negotiation against hostile clients (issue 13, findings 2, 6, 8),
on in-memory streams: the negotiation has one deadline that retries cannot
extend, a connection is a session only after its login, failed logins back
off per address and are logged in summary, and a bad Content-Length ends
only that connection, with no traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from node.dataplane.hubs import RunningHub
from node.dataplane.vpn_handler import VpnHandler
from node.server import VpnServer
from node.softether.errors import Err
from node.softether.handshake import AuthRequest, AuthType, ErrorReply, Hello, Welcome
from node.softether.httpmsg import PackClientChannel
from node.softether.sha0 import hash_password, secure_password
from node.state import model
from tests.unit.dataplane.fakes import make_server
from vpnbus.auth_backoff import AuthBackoff
from tests.unit.dataplane.test_vpn_handler import MemWriter, listener_handoff

PEER = "127.0.0.9:4242"   # MemWriter's peername


def _server(tmp_path) -> VpnServer:
    hub = model.Hub(name="HUB", users=[model.User(name="alice", hashed_key=hash_password("alice", "pw"))])
    server = make_server(tmp_path, hubs=[hub])
    server.hubs["hub"] = RunningHub("HUB")
    return server


async def _login(server: VpnServer, password: str) -> tuple[object, bool]:
    """One connection: signature, hello, a password login for alice. Returns
    (the server's answer: Welcome or ErrorReply, whether on_session ran)."""
    client = PackClientChannel("x")
    conn, request = listener_handoff(client.signature_request())
    reader = asyncio.StreamReader()
    writer = MemWriter(reader)
    sessions: list[int] = []
    task = asyncio.create_task(VpnHandler(server)(conn, request, reader, writer, PEER,
                                                  lambda: sessions.append(1)))
    for _ in range(200):
        await asyncio.sleep(0)
        if writer.data:
            break
    client.receive_data(bytes(writer.data))
    hello = Hello.from_pack(client.next_pack())
    writer.data.clear()
    proof = secure_password(hash_password("alice", password), hello.random)
    reader.feed_data(client.send_pack(AuthRequest(hubname="HUB", username="alice", authtype=AuthType.PASSWORD,
                                                  secure_password=proof).to_pack()))
    for _ in range(200):
        await asyncio.sleep(0)
        if writer.data:
            break
    client.receive_data(bytes(writer.data))
    pack = client.next_pack()
    assert pack is not None
    answer: object = Welcome.from_pack(pack) if pack.get_int("error", 0) == 0 else ErrorReply.from_pack(pack)
    reader.feed_eof()
    await asyncio.wait_for(task, 10)
    return answer, bool(sessions)


def test_a_connection_is_a_session_only_after_its_login(tmp_path):
    """Finding 2: posting the signature lifted the connection out of the
    cap on connections that are not sessions; only a login may."""
    async def main():
        server = _server(tmp_path)
        refused, counted = await _login(server, "wrong")
        assert isinstance(refused, ErrorReply) and refused.code == Err.AUTH_FAILED and not counted
        welcome, counted = await _login(server, "pw")
        assert isinstance(welcome, Welcome) and counted
    asyncio.run(main())


def test_retrying_bad_signatures_cannot_extend_the_negotiation(tmp_path):
    """Finding 2: each of 19 signature attempts had its own 15 s step, so a
    client could hold a connection for minutes; now the whole negotiation
    has one deadline."""
    async def main():
        client = PackClientChannel("x")
        bad = client.signature_request(b"not the watermark")
        conn, request = listener_handoff(bad)
        reader = asyncio.StreamReader()
        writer = MemWriter(reader)
        handler = VpnHandler(_server(tmp_path), step_timeout_s=5.0, negotiation_timeout_s=0.3)
        task = asyncio.create_task(handler(conn, request, reader, writer, PEER, lambda: None))
        for _ in range(19):       # one bad signature every 0.1 s: each step well within its 5 s
            if task.done():
                break
            client = PackClientChannel("x")
            reader.feed_data(client.signature_request(b"not the watermark"))
            await asyncio.sleep(0.1)
        await asyncio.wait_for(task, 10)
        refusals = bytes(writer.data).count(b"HTTP/1.1 403")
        assert 1 <= refusals < 19, refusals
    asyncio.run(main())


def test_password_guessing_backs_off_per_address_and_logs_in_summary(tmp_path, caplog):
    """Finding 6 (VPN login): after a few failures the address waits; a
    login during the wait is refused unchecked (even a right one); the log
    has one line, not one per guess; a success clears the address."""
    async def main():
        server = _server(tmp_path)
        server.vpn_login_backoff = AuthBackoff(first_delay_s=60.0)   # a wait no test run outlasts
        answers = [(await _login(server, f"guess{n}"))[0] for n in range(30)]
        assert all(isinstance(a, ErrorReply) and a.code == Err.AUTH_FAILED for a in answers)
        assert server.vpn_login_backoff.failures("127.0.0.9") < 10   # the rest were not checked
        right, counted = await _login(server, "pw")
        assert isinstance(right, ErrorReply) and not counted         # still waiting
        server.vpn_login_backoff.succeeded("127.0.0.9")              # as if the wait were over and it logged in
        welcome, counted = await _login(server, "pw")
        assert isinstance(welcome, Welcome) and counted

    with caplog.at_level(logging.INFO, logger="vpnd.vpn"):
        asyncio.run(main())
    failed = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failed) == 1, failed


@pytest.mark.parametrize("length", [0, 65537])
def test_a_pack_with_a_bad_content_length_ends_only_that_connection(tmp_path, caplog, length):
    """Finding 8: after the HttpError, the epilogue read again from a
    channel whose head was never set and raised (a traceback per
    connection)."""
    async def main():
        client = PackClientChannel("x")
        conn, request = listener_handoff(client.signature_request())
        reader = asyncio.StreamReader()
        writer = MemWriter(reader)
        reader.feed_data(b"POST /vpnsvc/vpn.cgi HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % length + b"\0" * min(length, 70000))
        reader.feed_eof()
        await asyncio.wait_for(VpnHandler(_server(tmp_path))(conn, request, reader, writer, PEER,
                                                               lambda: None), 10)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
