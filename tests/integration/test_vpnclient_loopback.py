"""The reconnecting client against scripted SE-VPN servers on loopback.

Each fake server runs our sans-IO server channel over real TLS (its own
self-signed certificate), answers the login as the test scripts it, then
echoes the data stream back (a one-port "hub"). This checks what only real
sockets show: redirect + certificate pinning, reconnect after a loss or a
session timeout, giving up, and refusals -- without SoftEther or root.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from node.softether.blocks import encode_frames, encode_keepalive
from node.softether.errors import Err
from node.softether.handshake import AuthRequest, AuthType, ErrorReply, Hello, Redirect, Welcome
from node.softether.httpmsg import PackServerChannel
from node.softether.sha0 import hash_password, secure_password
from node.state.tlscert import certificate_der, ensure_certificate, server_context
from tools.vpnclient.client import EXIT_GAVE_UP, EXIT_REFUSED, EXIT_STOPPED, UserspaceClient
from tools.vpnclient.retry import RetryPolicy

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]

PASSWORD = "pw"
TICKET = bytes(range(20))
FAST = RetryPolicy(max_retries=3, base_s=0.02, cap_s=0.05)


class FakeServer:
    """Login by `decide(auth, random) -> reply`; a Welcome starts an echo of the
    stream, closed after `drop_after` bytes (None: never) or never answered
    when `silent`."""

    def __init__(self, tmp, name: str, decide) -> None:
        (tmp / name).mkdir()
        cert, key = ensure_certificate(tmp / name)
        self.cert_der = certificate_der(cert)
        self.ctx = server_context(cert, key)
        self.decide = decide
        self.logins: list[AuthRequest] = []
        self.drop_first_session = False
        self.silent = False
        self.greeting = b""  # blocks sent right after the welcome, in their own TLS record
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> FakeServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ch = PackServerChannel()
        try:
            while ch.next_signature() is None:
                ch.receive_data(await reader.read(65536))
            rand = os.urandom(20)
            writer.write(ch.send_pack(Hello(random=rand).to_pack()))
            while (pack := ch.next_pack()) is None:
                ch.receive_data(await reader.read(65536))
            auth = AuthRequest.from_pack(pack)
            self.logins.append(auth)
            reply = self.decide(auth, rand)
            writer.write(ch.send_pack(reply.to_pack()))
            if self.greeting and isinstance(reply, Welcome):
                await writer.drain()
                writer.write(self.greeting)
            if not isinstance(reply, Welcome):
                await reader.read(65536)  # the client's empty PACK or close
                return
            if self.drop_first_session and len(self.logins) == 1:
                return
            data = ch.trailing_data
            while True:
                if data and not self.silent:
                    writer.write(data)
                data = await reader.read(65536)
                if not data:
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()


def welcome(timeout_ms: int = 20_000) -> Welcome:
    return Welcome(session_name="SID-ALICE-1", connection_name="CID-1", session_key=os.urandom(20),
                   timeout_ms=timeout_ms)


def password_ok(auth: AuthRequest, rand: bytes) -> bool:
    return (auth.authtype == AuthType.PASSWORD
            and auth.secure_password == secure_password(hash_password(auth.username, PASSWORD), rand))


def member_decide(auth, rand):
    if auth.authtype == AuthType.TICKET and auth.ticket == TICKET and auth.username == "alice":
        return welcome()
    return ErrorReply(code=Err.AUTH_FAILED)


async def cluster(tmp, *, cert_of=None):
    member = await FakeServer(tmp, "member", member_decide).start()
    cert = member.cert_der if cert_of is None else cert_of

    def controller_decide(auth, rand):
        if not password_ok(auth, rand):
            return ErrorReply(code=Err.AUTH_FAILED)
        return Redirect(ip=ipaddress.IPv4Address("127.0.0.1"), ports=(member.port, 1), ticket=TICKET, cert=cert)
    controller = await FakeServer(tmp, "controller", controller_decide).start()
    return controller, member


def client(server: FakeServer, password: str = PASSWORD) -> UserspaceClient:
    return UserspaceClient(f"127.0.0.1:{server.port}", "lab", "alice", password, retry=FAST, connect_timeout_s=5)


async def wait_for(cond, attempts: int = 400) -> None:
    for _ in range(attempts):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_redirect_is_followed_with_a_ticket_and_frames_flow(tmp_path):
    async def main():
        controller, member = await cluster(tmp_path)
        c = client(controller)
        await c.wait_connected(10)
        st = c.status
        assert (st.server, st.redirected, st.session_name) == (f"127.0.0.1:{member.port}", True, "SID-ALICE-1")
        assert [a.authtype for a in controller.logins] == [AuthType.PASSWORD]
        assert [(a.authtype, a.username, a.hubname) for a in member.logins] == [(AuthType.TICKET, "alice", "lab")]
        frames = [bytes([i]) * 100 for i in range(1, 40)]
        await c.send_frames(frames)
        got = [await c.receive(5) for _ in frames]
        assert got == frames
        assert await c.stop() == EXIT_STOPPED and c.status.state.value == "stopped"
        await controller.stop()
        await member.stop()
    asyncio.run(main())


def test_blocks_right_behind_the_welcome_are_not_lost(tmp_path):
    async def main():
        server = await FakeServer(tmp_path, "eager", lambda a, r: welcome()).start()
        frames = [bytes([i]) * 80 for i in range(1, 6)]
        server.greeting = encode_frames(frames[:2]) + encode_keepalive(b"k" * 9) + encode_frames(frames[2:])
        c = client(server)
        await c.wait_connected(10)
        assert [await c.receive(5) for _ in frames] == frames
        await c.stop()
        await server.stop()
    asyncio.run(main())


def test_a_member_with_another_certificate_is_refused(tmp_path):
    async def main():
        controller, member = await cluster(tmp_path, cert_of=b"not the member's certificate")
        c = client(controller)
        c.start()
        await wait_for(lambda: c.exit_code is not None)
        assert c.exit_code == EXIT_GAVE_UP
        assert c.status.last_error_code == Err.CERT_NOT_TRUSTED and member.logins == []
        await controller.stop()
        await member.stop()
    asyncio.run(main())


def test_wrong_password_ends_the_client_at_once(tmp_path):
    async def main():
        controller, member = await cluster(tmp_path)
        c = client(controller, password="wrong")
        c.start()
        await wait_for(lambda: c.exit_code is not None)
        assert c.exit_code == EXIT_REFUSED and c.status.last_error_code == Err.AUTH_FAILED
        assert "ERR_AUTH_FAILED" in c.status.last_error and len(controller.logins) == 1
        await controller.stop()
        await member.stop()
    asyncio.run(main())


def test_a_lost_session_reconnects_through_the_controller(tmp_path):
    async def main():
        controller, member = await cluster(tmp_path)
        member.drop_first_session = True
        c = client(controller)
        c.start()
        await wait_for(lambda: c.status.reconnects == 1 and c.status.state.value == "connected")
        assert len(controller.logins) == 2 and len(member.logins) == 2
        assert [h["event"] for h in c.status.history][:3] == ["connected", "lost", "connected"]
        await c.send_frames([b"\x05" * 64])
        assert await c.receive(5) == b"\x05" * 64
        await c.stop()
        await controller.stop()
        await member.stop()
    asyncio.run(main())


def test_silence_ends_the_session_with_a_timeout_then_reconnects(tmp_path):
    async def main():
        server = await FakeServer(tmp_path, "quiet", lambda a, r: welcome(timeout_ms=300)).start()
        server.silent = True
        c = client(server)
        c.start()
        await wait_for(lambda: c.status.reconnects >= 1)
        assert c.status.last_error_code == Err.SESSION_TIMEOUT
        await c.stop()
        await server.stop()
    asyncio.run(main())


def test_an_unreachable_server_is_retried_then_given_up(tmp_path):
    async def main():
        server = await FakeServer(tmp_path, "gone", lambda a, r: welcome()).start()
        port = server.port
        await server.stop()
        await server.server.wait_closed()
        c = UserspaceClient(f"127.0.0.1:{port}", "lab", "alice", PASSWORD, retry=FAST)
        c.start()
        await wait_for(lambda: c.exit_code is not None)
        assert c.exit_code == EXIT_GAVE_UP and c.status.last_error_code == Err.CONNECT_FAILED
        assert c.status.failed_attempts == FAST.max_retries + 1  # the first attempt and its retries
    asyncio.run(main())


def test_cli_keeps_a_status_file_and_stops_cleanly_on_sigterm(tmp_path):
    async def main():
        controller, member = await cluster(tmp_path)
        pw = tmp_path / "pw"
        pw.write_text(PASSWORD + "\n")
        status = tmp_path / "status.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tools.vpnclient.main", "connect", "--server", f"127.0.0.1:{controller.port}",
            "--hub", "lab", "--user", "alice", "--password-file", str(pw), "--userspace",
            "--status-file", str(status), cwd=REPO, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            def connected():
                try:
                    return json.loads(status.read_text())["state"] == "connected"
                except (OSError, ValueError):
                    return False
            await wait_for(connected, attempts=1000)
            doc = json.loads(status.read_text())
            assert doc["server"] == f"127.0.0.1:{member.port}" and doc["redirected"] is True
            assert doc["configured_server"] == f"127.0.0.1:{controller.port}"
            assert doc["session_name"] == "SID-ALICE-1" and doc["connected_at"] >= doc["started_at"]
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == EXIT_STOPPED, err
        assert b"Traceback" not in err and b"redirected by" in err
        doc = json.loads(status.read_text())
        assert doc["state"] == "stopped" and doc["server"] is None
        await controller.stop()
        await member.stop()
    asyncio.run(main())
