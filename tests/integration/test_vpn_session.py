"""VPN sessions through a real vpnd on loopback, with a minimal SE-VPN client
built here from node/softether's client cores (no TAP, no root): login,
frames switched between sessions, refused logins, and broken clients that
must cost only their own connection."""

from __future__ import annotations

import asyncio
import os
import ssl
import struct

import pytest

from node.softether.blocks import BlockDecoder, encode_frames, encode_keepalive
from node.softether.errors import Err
from node.softether.handshake import (
    AdditionalConnectRequest, AuthRequest, AuthType, Hello, ServerError, Welcome, parse_login_reply,
)
from node.softether.httpmsg import HttpError, PackClientChannel
from node.softether.pack import Pack
from node.softether.sha0 import hash_password, secure_password
from node.state.tlscert import client_context
from tests.unit.dataplane.fakes import BCAST, mac

HUB, USER, PASSWORD = "Sales", "alice", "s3cret"
IO_TIMEOUT_S = 10.0


def frame(dst: bytes, src: bytes, payload: bytes = b"") -> bytes:
    """An Ethernet frame with an experimental ethertype (no IP learning)."""
    return dst + src + b"\x88\xb5" + payload.ljust(46, b"\0")


class MiniClient:
    """One SE-VPN connection: signature, hello, one PACK request, then blocks."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.channel = PackClientChannel("127.0.0.1")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.decoder: BlockDecoder | None = None
        self.welcome: Welcome | None = None
        self.received: list[bytes] = []
        self.random = b""

    async def open(self, signature: bytes | None = None) -> Hello:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=client_context())
        self.writer.write(self.channel.signature_request() if signature is None
                          else self.channel.signature_request(signature))
        hello = Hello.from_pack(await self.next_pack())
        self.random = hello.random
        return hello

    async def next_pack(self) -> Pack:
        async with asyncio.timeout(IO_TIMEOUT_S):
            while True:
                pack = self.channel.next_pack()
                if pack is not None:
                    return pack
                self.channel.receive_data(await self.reader.read(65536))

    async def request_raw(self, data: bytes) -> Pack:
        self.writer.write(data)
        return await self.next_pack()

    async def request(self, pack: Pack) -> Pack:
        self.writer.write(self.channel.send_pack(pack))
        return await self.next_pack()

    async def login(self, user: str = USER, password: str = PASSWORD, hub: str = HUB,
                    authtype: int = AuthType.PASSWORD, compress: bool = False) -> Welcome:
        await self.open()
        auth = AuthRequest(hubname=hub, username=user, authtype=authtype,
                           secure_password=secure_password(hash_password(user, password), self.random),
                           use_compress=compress, client_hostname="mini", unique_id=os.urandom(20))
        reply = parse_login_reply(await self.request(auth.to_pack()))
        assert isinstance(reply, Welcome)
        self.welcome = reply
        self.decoder = BlockDecoder(reply.use_compress)
        self.received += self.decoder.feed_frames(self.channel.trailing_data)
        return reply

    def send(self, frames: list[bytes]) -> None:
        self.writer.write(encode_frames(frames, self.welcome.use_compress))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_for(self, predicate, timeout_s: float = IO_TIMEOUT_S) -> list[bytes]:
        """Read blocks until predicate(received) holds; returns received."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self.received):
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the session")
                self.received += self.decoder.feed_frames(data)
        return self.received

    async def closed_by_server(self, timeout_s: float = IO_TIMEOUT_S) -> bool:
        """True once the server closes the connection (data before EOF is skipped)."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.reader.read(65536):
                    pass
        except (ConnectionError, ssl.SSLError):
            pass
        return True

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                async with asyncio.timeout(2):
                    await self.writer.wait_closed()
            except (TimeoutError, ConnectionError, ssl.SSLError):
                pass


def _ok(doc: dict) -> dict:
    assert "result" in doc, doc
    return doc["result"]


@pytest.fixture
def node(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": HUB, "Online_bool": True, "AdminPasswordPlainText_str": "hubpw"}))
    _ok(vpnd.call("CreateUser", {"HubName_str": HUB, "Name_str": USER, "AuthType_u32": 1,
                                 "Auth_Password_str": PASSWORD}))
    _ok(vpnd.call("CreateUser", {"HubName_str": HUB, "Name_str": "bob", "AuthType_u32": 1,
                                 "Auth_Password_str": "bobpw"}))
    _ok(vpnd.call("CreateUser", {"HubName_str": HUB, "Name_str": "guest", "AuthType_u32": 0}))
    return vpnd


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _pair(port: int) -> tuple[MiniClient, MiniClient]:
    a, b = MiniClient(port), MiniClient(port)
    await a.login()
    await b.login("bob", "bobpw")
    return a, b


async def _exchange(a: MiniClient, b: MiniClient, tag: bytes) -> None:
    """a broadcasts, b answers a by unicast: both directions work."""
    a.send([frame(BCAST, mac(1), tag + b"-bcast")])
    await b.wait_for(lambda got: any(tag + b"-bcast" in f for f in got))
    b.send([frame(mac(1), mac(2), tag + b"-ucast")])
    await a.wait_for(lambda got: any(tag + b"-ucast" in f for f in got))


def test_two_sessions_switch_frames_through_the_hub(node):
    async def main():
        a, b = await _pair(node.port)
        try:
            assert a.welcome.session_name == "SID-ALICE-1" and b.welcome.session_name == "SID-BOB-2"
            assert a.welcome.max_connection == 1 and not a.welcome.qos and a.welcome.timeout_ms == 20000
            await _exchange(a, b, b"one")
            # b's MAC is learnt now: a unicast to it reaches b only, as one burst of several frames
            burst = [frame(mac(2), mac(1), b"u%d" % i) for i in range(5)]
            a.send(burst)
            await b.wait_for(lambda got: all(f in got for f in burst))
            assert not any(b"u0" in f for f in a.received)
            sessions = _ok(node.call("EnumSession", {"HubName_str": HUB}))["SessionList"]
            rows = {s["Name_str"]: s for s in sessions}
            assert rows["SID-ALICE-1"]["Username_str"] == "alice"
            assert rows["SID-BOB-2"]["CurrentNumTcp_u32"] == 1
            assert rows["SID-ALICE-1"]["Hostname_str"] == "mini"
            status = _ok(node.call("GetSessionStatus", {"HubName_str": HUB, "Name_str": "SID-ALICE-1"}))
            assert status["TotalSendSize_u64"] > 0 and status["TotalRecvSize_u64"] > 0
            assert status["ConnectionName_str"] == a.welcome.connection_name and a.welcome.connection_name.startswith("CID-")
            macs = _ok(node.call("EnumMacTable", {"HubName_str": HUB}))["MacTable"]
            assert {m["SessionName_str"] for m in macs} == {"SID-ALICE-1", "SID-BOB-2"}
        finally:
            await a.close()
            await b.close()

    run(main())


def test_compressed_session_and_anonymous_user(node):
    async def main():
        a, g = MiniClient(node.port), MiniClient(node.port)
        await a.login(compress=True)
        await g.login("guest", "whatever", authtype=AuthType.ANONYMOUS)
        try:
            assert a.welcome.use_compress
            await _exchange(a, g, b"zip")
        finally:
            await a.close()
            await g.close()

    run(main())


def test_keepalives_keep_a_quiet_session_and_count_as_life(node):
    async def main():
        a, b = await _pair(node.port)
        try:
            a.send_raw(encode_keepalive(b"x" * 100) + encode_frames([]))
            await _exchange(a, b, b"after-keepalive")
        finally:
            await a.close()
            await b.close()

    run(main())


@pytest.mark.parametrize("user,password,hub,code", [
    (USER, "wrong", HUB, Err.AUTH_FAILED),
    ("nobody", "x", HUB, Err.AUTH_FAILED),
    (USER, PASSWORD, "NoSuchHub", Err.HUB_NOT_FOUND),
    ("administrator", "wrong", HUB, Err.AUTH_FAILED),
])
def test_refused_logins_get_softether_errors_and_the_daemon_keeps_serving(node, user, password, hub, code):
    async def main():
        bad = MiniClient(node.port)
        with pytest.raises(ServerError) as err:
            await bad.login(user, password, hub)
        assert err.value.code == code
        await bad.close()
        a, b = await _pair(node.port)
        try:
            await _exchange(a, b, b"still")
        finally:
            await a.close()
            await b.close()

    run(main())
    assert f"login failed: user {user!r} on hub {hub!r} from 127.0.0.1" in node.log()


def test_hub_administrator_and_offline_hub(node):
    async def main():
        admin = MiniClient(node.port)
        await admin.login("administrator", "hubpw")
        a = MiniClient(node.port)
        await a.login()
        _ok(node.call("SetHubOnline", {"HubName_str": HUB, "Online_bool": False}))
        assert await a.closed_by_server() and await admin.closed_by_server()   # sessions end with the hub
        await a.close()
        await admin.close()
        off = MiniClient(node.port)
        with pytest.raises(ServerError) as err:
            await off.login()
        assert err.value.code == Err.HUB_STOPPING
        await off.close()

    run(main())


def test_a_full_hub_answers_hub_is_busy(node):
    _ok(node.call("SetHub", {"HubName_str": HUB, "Online_bool": True, "MaxSession_u32": 1, "HubType_u32": 0}))

    async def main():
        a = MiniClient(node.port)
        await a.login()
        b = MiniClient(node.port)
        with pytest.raises(ServerError) as err:
            await b.login("bob", "bobpw")
        assert err.value.code == Err.HUB_IS_BUSY
        await b.close()
        await a.close()

    run(main())


def test_ticket_additional_connect_enum_hub_and_unknown_method(node):
    async def main():
        t = MiniClient(node.port)
        await t.open()
        auth = AuthRequest(hubname=HUB, username=USER, authtype=AuthType.TICKET, ticket=os.urandom(20))
        assert (await t.request(auth.to_pack())).get_int("error") == Err.AUTH_FAILED
        await t.close()

        # an unknown session key: the session is gone, start over (13, as SoftEther)
        c = MiniClient(node.port)
        await c.open()
        reply = await c.request(AdditionalConnectRequest(session_key=os.urandom(20)).to_pack())
        assert reply.get_int("error") == Err.SESSION_TIMEOUT
        await c.close()
        # a live session's key: sessions here use one connection (15 drops only that socket)
        live = MiniClient(node.port)
        welcome = await live.login()
        c = MiniClient(node.port)
        await c.open()
        reply = await c.request(AdditionalConnectRequest(session_key=welcome.session_key).to_pack())
        assert reply.get_int("error") == Err.TOO_MANY_CONNECTION
        await c.close()
        await live.close()

        e = MiniClient(node.port)
        await e.open()
        enum = Pack()
        enum.add_str("method", "enum_hub")
        reply = await e.request(enum)
        assert reply.get_strs("HubName") == (HUB,) and reply.get_int("NumHub") == 1
        await e.close()

        u = MiniClient(node.port)
        await u.open()
        odd = Pack()
        odd.add_str("method", "password_change_please")
        assert (await u.request(odd)).get_int("error") == Err.PROTOCOL_ERROR
        await u.close()

    run(main())


def test_a_wrong_signature_is_answered_403_and_the_client_may_try_again(node):
    async def main():
        c = MiniClient(node.port)
        with pytest.raises(HttpError, match="403"):
            await c.open(signature=b"VPNCONNECX")
        hello = Hello.from_pack(await c.request_raw(c.channel.signature_request()))
        assert len(hello.random) == 20
        await c.close()

    run(main())


def _truncated_pack_request(client: MiniClient) -> bytes:
    body = AuthRequest(hubname=HUB, username=USER).to_pack().encode()[:-7]
    return client.channel.send_pack(Pack(), rand_bytes=None).replace(
        b"Content-Length: 4", b"Content-Length: %d" % len(body)).replace(b"\x00\x00\x00\x00", body)


@pytest.mark.parametrize("breakage", ["garbage_after_signature", "truncated_pack", "bad_block_size",
                                      "bad_keepalive", "bad_signature"])
def test_a_broken_client_loses_only_its_own_connection(node, breakage):
    async def main():
        a, b = await _pair(node.port)
        bad = MiniClient(node.port)
        try:
            if breakage == "bad_signature":
                bad.reader, bad.writer = await asyncio.open_connection("127.0.0.1", node.port, ssl=client_context())
                bad.writer.write(bad.channel.signature_request(b"x" * 5000))
                assert await bad.closed_by_server()
            elif breakage == "garbage_after_signature":
                await bad.open()
                bad.send_raw(b"\x00\xffnot http at all\r\n\r\n")
                assert await bad.closed_by_server()
            elif breakage == "truncated_pack":
                await bad.open()
                bad.send_raw(_truncated_pack_request(bad))
                reply = await bad.next_pack()
                assert reply.get_int("error") == Err.PROTOCOL_ERROR
            else:
                await bad.login("bob", "bobpw")
                if breakage == "bad_block_size":
                    bad.send_raw(struct.pack(">II", 1, 5000) + b"\0" * 64)
                else:
                    bad.send_raw(struct.pack(">II", 0xFFFFFFFF, 4096))
                assert await bad.closed_by_server()
            await _exchange(a, b, breakage.encode())
        finally:
            for c in (a, b, bad):
                await c.close()

    run(main())
    if breakage in ("bad_block_size", "bad_keepalive"):
        assert "SID-BOB-3" in node.log() and "protocol error" in node.log()


def test_a_client_that_disconnects_leaves_the_session_list(node):
    async def main():
        a, b = await _pair(node.port)
        await b.close()
        for _ in range(100):
            rows = _ok(node.call("EnumSession", {"HubName_str": HUB}))["SessionList"]
            if [r["Name_str"] for r in rows] == ["SID-ALICE-1"]:
                break
            await asyncio.sleep(0.05)
        assert [r["Name_str"] for r in rows] == ["SID-ALICE-1"]
        _ok(node.call("DeleteSession", {"HubName_str": HUB, "Name_str": "SID-ALICE-1"}))
        assert await a.closed_by_server()

    run(main())
