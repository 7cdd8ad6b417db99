"""The login decision (`authenticate`) as SoftEther's ServerAccept makes it:
order of checks and error codes, from a config table; the enum_hub reply;
the handler on in-memory streams (step time limit, the listener's buffer)."""

from __future__ import annotations

import asyncio
import logging

import h11
import pytest

from node.dataplane.hubs import RunningHub
from node.dataplane.vpn_handler import LoginGranted, LoginRefused, VpnHandler, authenticate, enum_hub_pack
from node.listener import HttpRequest
from node.server import VpnServer
from node.softether.errors import Err
from node.softether.handshake import AuthRequest, AuthType, Hello, Welcome
from node.softether.httpmsg import PackClientChannel
from node.softether.pack import Pack
from node.softether.sha0 import hash_password, secure_password
from node.state import model
from controller.tickets import TicketBook, TicketGrant
from tests.unit.dataplane.fakes import make_server

RANDOM = bytes(range(20))
NOW = 1_800_000_000.0


def config(server_type: int = model.SERVER_STANDALONE) -> model.Server:
    users = [
        model.User(name="Alice", hashed_key=hash_password("Alice", "pw")),
        model.User(name="guest", auth_type=model.AUTH_ANONYMOUS),
        model.User(name="old", hashed_key=hash_password("old", "pw"), expire_time=NOW - 1),
        model.User(name="nopw", auth_type=5),
    ]
    hubs = [
        model.Hub(name="Sales", secure_password=hash_password("administrator", "hubpw"), users=users),
        model.Hub(name="Open", secure_password=hash_password("administrator", ""), no_enum=True),
        model.Hub(name="Down", online=False),
    ]
    return model.Server(admin_password_hash=bytes(20), listeners=[], hubs=hubs,
                        farm=model.Farm(server_type=server_type))


def login(user: str, password: str | None = "pw", *, hub: str = "Sales", authtype: int = AuthType.PASSWORD,
          cfg: model.Server | None = None, local: bool = False, **extra):
    proof = secure_password(hash_password(user, password), RANDOM) if password is not None else b""
    auth = AuthRequest(hubname=hub, username=user, authtype=authtype, secure_password=proof, **extra)
    return authenticate(cfg or config(), auth, RANDOM, running={"sales", "open"}, now_wall=NOW,
                        client_is_local=local)


def refused(*args, **kw) -> int:
    with pytest.raises(LoginRefused) as err:
        login(*args, **kw)
    return err.value.code


def test_password_login_case_insensitive_user_and_hub():
    granted = login("alice", hub="SALES")
    assert granted.hub.name == "Sales" and granted.username == "alice" and granted.method == "password"


@pytest.mark.parametrize("args,kw,code", [
    (("Alice", "wrong"), {}, Err.AUTH_FAILED),
    (("nobody",), {}, Err.AUTH_FAILED),
    (("Alice",), {"hub": "Nope"}, Err.HUB_NOT_FOUND),
    (("Alice",), {"hub": "Down"}, Err.HUB_STOPPING),
    (("Alice", None), {"authtype": AuthType.ANONYMOUS}, Err.AUTH_FAILED),
    (("Alice",), {"authtype": AuthType.TICKET, "ticket": bytes(20)}, Err.AUTH_FAILED),
    (("Alice",), {"authtype": AuthType.CERT}, Err.AUTHTYPE_NOT_SUPPORTED),
    (("Alice",), {"authtype": 42}, Err.AUTHTYPE_NOT_SUPPORTED),
    (("nopw",), {}, Err.AUTH_FAILED),
    (("old",), {}, Err.ACCESS_DENIED),
    (("administrator", "wrong"), {}, Err.AUTH_FAILED),
    (("administrator", ""), {"hub": "Open"}, Err.NULL_PASSWORD_LOCAL_ONLY),
])
def test_refusals_carry_softether_codes(args, kw, code):
    assert refused(*args, **kw) == code


def test_hub_not_found_is_checked_before_offline_and_offline_before_the_password():
    assert refused("Alice", "wrong", hub="Nope") == Err.HUB_NOT_FOUND
    assert refused("Alice", "wrong", hub="Down") == Err.HUB_STOPPING


def test_a_hub_configured_online_but_not_running_here_is_stopping():
    cfg = config()
    auth = AuthRequest(hubname="Sales", username="Alice", authtype=AuthType.PASSWORD,
                       secure_password=secure_password(hash_password("Alice", "pw"), RANDOM))
    with pytest.raises(LoginRefused) as err:
        authenticate(cfg, auth, RANDOM, running=set(), now_wall=NOW, client_is_local=True)
    assert err.value.code == Err.HUB_STOPPING


def test_an_anonymous_user_gets_in_whatever_method_is_asked():
    assert login("guest", None, authtype=AuthType.ANONYMOUS).method == "anonymous"
    assert login("guest", "anything").method == "anonymous"
    assert login("guest", None, authtype=AuthType.CERT).method == "anonymous"


def test_plain_password_is_hashed_like_a_password_login():
    auth = AuthRequest(hubname="Sales", username="alice", authtype=AuthType.PLAIN_PASSWORD, plain_password="pw")
    assert authenticate(config(), auth, RANDOM, running={"sales"}, now_wall=NOW,
                        client_is_local=False).method == "password"


def test_a_plain_password_that_is_not_utf8_or_too_long_fails_cleanly():
    def plain(user: str, pw: str) -> int:
        auth = AuthRequest(hubname="Sales", username=user, authtype=AuthType.PLAIN_PASSWORD, plain_password=pw)
        with pytest.raises(LoginRefused) as err:
            authenticate(config(), auth, RANDOM, running={"sales"}, now_wall=NOW, client_is_local=False)
        return err.value.code
    # bytes that are not UTF-8 arrive as surrogates (pack.py): hashed as bytes, no crash
    assert plain("alice", "p\udcffw") == Err.AUTH_FAILED
    assert plain("al\udcffice", "pw") == Err.AUTH_FAILED
    assert plain("alice", "x" * 256) == Err.AUTH_FAILED
    assert plain("a" * 256, "pw") == Err.AUTH_FAILED


def test_hub_administrator_uses_the_hub_admin_password():
    assert login("Administrator", "hubpw").method == "administrator"
    assert login("administrator", "", hub="Open", local=True).method == "administrator"


def test_a_proof_of_the_wrong_size_fails():
    auth = AuthRequest(hubname="Sales", username="Alice", authtype=AuthType.PASSWORD, secure_password=b"short")
    with pytest.raises(LoginRefused) as err:
        authenticate(config(), auth, RANDOM, running={"sales"}, now_wall=NOW, client_is_local=True)
    assert err.value.code == Err.AUTH_FAILED


def test_a_cluster_member_takes_only_ticket_and_administrator_logins():
    member = config(model.SERVER_MEMBER)
    assert refused("Alice", cfg=member) == Err.ACCESS_DENIED
    assert refused("Alice", cfg=member, authtype=AuthType.TICKET, ticket=bytes(20)) == Err.AUTH_FAILED
    assert login("administrator", "hubpw", cfg=member).method == "administrator"
    # A hub without an instance here (a dynamic hub placed elsewhere) does not exist on a member.
    assert refused("administrator", "pw", cfg=member, hub="Down") == Err.HUB_NOT_FOUND


def test_a_ticket_login_is_redeemed_once_and_named_as_the_controller_said():
    member = config(model.SERVER_MEMBER)
    tickets = TicketBook()
    ticket = bytes(range(1, 21))
    tickets.store(ticket, TicketGrant(hub="sales", user_name="Alice", real_user_name="Alice",
                                      session_name="SID-ALICE-7"), 10.0)
    auth = AuthRequest(hubname="Sales", username="Alice", authtype=AuthType.TICKET, ticket=ticket)

    def redeem() -> LoginGranted:
        return authenticate(member, auth, RANDOM, running={"sales"}, now_wall=NOW, client_is_local=False,
                            tickets=tickets, now=11.0)
    granted = redeem()
    assert (granted.method, granted.username, granted.session_name) == ("ticket", "Alice", "SID-ALICE-7")
    with pytest.raises(LoginRefused) as again:
        redeem()
    assert again.value.code == Err.AUTH_FAILED


def test_enum_hub_lists_hubs_without_no_enum():
    p = Pack.decode(enum_hub_pack(config()).encode())
    assert p.get_strs("HubName") == ("Sales", "Down") and p.get_int("NumHub") == 2
    empty = enum_hub_pack(model.Server(admin_password_hash=bytes(20), listeners=[]))
    assert empty.get_int("NumHub") == 0 and "HubName" not in empty


# ---- the handler on in-memory streams ---------------------------------------------------

class MemWriter:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.data = bytearray()
        self.transport = self
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.reader.feed_eof()

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.9", 4242) if name == "peername" else default


def listener_handoff(wire: bytes) -> tuple[h11.Connection, HttpRequest]:
    """What the listener hands over: its h11 connection after the signature
    request (the rest of `wire` stays in its buffer) and the parsed request."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(wire)
    head = conn.next_event()
    body = b""
    while not isinstance(ev := conn.next_event(), h11.EndOfMessage):
        body += ev.data
    headers = {k.decode(): v.decode() for k, v in head.headers}
    return conn, HttpRequest(head.method.decode(), head.target.decode(), headers, body)


def server_with_hub(tmp_path) -> VpnServer:
    hub = model.Hub(name="HUB", users=[model.User(name="guest", auth_type=model.AUTH_ANONYMOUS)])
    server = make_server(tmp_path, hubs=[hub])
    server.hubs["hub"] = RunningHub("HUB")
    return server


def test_a_client_silent_after_the_hello_is_dropped_after_the_step_timeout(tmp_path):
    async def main():
        client = PackClientChannel("x")
        conn, request = listener_handoff(client.signature_request())
        reader = asyncio.StreamReader()
        writer = MemWriter(reader)
        await asyncio.wait_for(VpnHandler(server_with_hub(tmp_path), step_timeout_s=0.05)(
            conn, request, reader, writer, "127.0.0.9:4242"), 5)
        client.receive_data(bytes(writer.data))
        assert len(Hello.from_pack(client.next_pack()).random) == 20
        assert client.next_pack() is None   # nothing after the hello

    asyncio.run(main())


def test_a_login_pipelined_behind_the_signature_is_served_from_the_listeners_buffer(tmp_path):
    async def main():
        client = PackClientChannel("x")
        auth = AuthRequest(hubname="HUB", username="guest", authtype=AuthType.ANONYMOUS)
        # the login goes out before the hello came back (a second channel makes those bytes)
        wire = client.signature_request() + PackClientChannel("x").send_pack(auth.to_pack())
        conn, request = listener_handoff(wire)
        reader = asyncio.StreamReader()
        writer = MemWriter(reader)
        server = server_with_hub(tmp_path)
        task = asyncio.create_task(VpnHandler(server)(conn, request, reader, writer, "127.0.0.9:4242"))
        for _ in range(20):
            await asyncio.sleep(0)
        client.receive_data(bytes(writer.data))
        Hello.from_pack(client.next_pack())
        client.send_pack(auth.to_pack())   # our channel now expects the login's answer
        welcome = Welcome.from_pack(client.next_pack())
        session = server.hubs["hub"].sessions[welcome.session_name]
        assert welcome.session_name == "SID-GUEST-1" and session.client_ip == "127.0.0.9"
        assert session.client_port == 4242 and session.session_key == welcome.session_key
        reader.feed_eof()
        await asyncio.wait_for(task, 5)
        assert server.hubs["hub"].sessions == {}

    asyncio.run(main())


def test_a_refused_login_cannot_forge_log_lines(tmp_path, caplog):
    async def main():
        client = PackClientChannel("x")
        auth = AuthRequest(hubname="HUB\nfake", username="eve\n2026 vpnd INFO forged" + "x" * 5000,
                           authtype=AuthType.ANONYMOUS)
        wire = client.signature_request() + PackClientChannel("x").send_pack(auth.to_pack())
        conn, request = listener_handoff(wire)
        reader = asyncio.StreamReader()
        reader.feed_eof()
        await asyncio.wait_for(VpnHandler(server_with_hub(tmp_path))(
            conn, request, reader, MemWriter(reader), "127.0.0.9:4242"), 5)

    with caplog.at_level(logging.INFO, logger="vpnd.vpn"):
        asyncio.run(main())
    failed = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
    assert len(failed) == 1 and "\n" not in failed[0] and len(failed[0]) < 400
