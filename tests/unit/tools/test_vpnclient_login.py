"""ClientLogin against our sans-IO server channel: exact proofs, redirects,
errors, byte-at-a-time feeding and malformed replies."""

import ipaddress

import pytest

from node.softether.blocks import encode_frames
from node.softether.errors import Err
from node.softether.handshake import (
    AuthRequest, AuthType, ErrorReply, Hello, Redirect, ServerError, Welcome,
)
from node.softether.httpmsg import PackServerChannel
from node.softether.pack import Pack
from node.softether.protocol_error import ProtocolError
from node.softether.sha0 import hash_password
from tools.vpnclient.login import ClientLogin, PasswordLogin, Redirected, TicketLogin, Welcomed

RANDOM = bytes(range(20))
KEY = bytes(range(100, 120))
TICKET = bytes(range(50, 70))
WELCOME = Welcome(session_name="SID-TEST-1", connection_name="CID-1", session_key=KEY, timeout_ms=15_000)
REDIRECT = Redirect(ip=ipaddress.IPv4Address("192.0.2.7"), ports=(443, 5555), ticket=TICKET, cert=b"DER")


def client(creds=None, **kw):
    return ClientLogin(host="192.0.2.1", hub="lab", username="test",
                       credentials=creds or PasswordLogin.from_plain("test", "password"),
                       rand_bytes=None, **kw)


def serve(c, reply, *, split=False, extra=b""):
    """Run a full login; returns (event, the server's decoded AuthRequest, server)."""
    s = PackServerChannel()
    s.receive_data(c.initiate())
    assert s.next_signature() is True
    hello = s.send_pack(Hello(random=RANDOM).to_pack(), None)
    assert feed(c, hello, split) is None
    s.receive_data(c.data_to_send())
    auth = AuthRequest.from_pack(s.next_pack())
    ev = feed(c, s.send_pack(reply.to_pack(), None) + extra, split)
    return ev, auth, s


def feed(c, data, split):
    if not split:
        return c.receive_data(data)
    ev = None
    for i in range(len(data)):
        got = c.receive_data(data[i:i + 1])
        assert got is None or ev is None
        ev = ev or got
    return ev


@pytest.mark.parametrize("split", [False, True])
def test_password_login_sends_the_sha0_proof_and_gets_the_welcome(split):
    c = client()
    # Blocks may follow the welcome in the same read (not byte-wise: the
    # edge switches to the tunnel at the welcome).
    first_frames = b"" if split else encode_frames([b"\x01" * 60])
    ev, auth, _ = serve(c, WELCOME, split=split, extra=first_frames)
    assert isinstance(ev, Welcomed) and ev.hello.random == RANDOM
    w = ev.welcome
    assert (w.session_name, w.connection_name, w.session_key, w.timeout_ms) == ("SID-TEST-1", "CID-1", KEY, 15_000)
    assert auth.authtype == AuthType.PASSWORD and (auth.hubname, auth.username) == ("lab", "test")
    # softether-protocol.md §4 test vector: SecurePassword(SHA0("passwordTEST"), 00..13)
    assert auth.secure_password.hex() == "627b13bdcd91082aeea1b874c961d437847bca90"
    assert auth.max_connection == 1 and not auth.qos and not auth.half_connection and auth.use_encrypt
    assert c.done and c.trailing_data == first_frames


def test_stored_hash_is_sha0_of_password_and_upper_user():
    assert PasswordLogin.from_plain("test", "password").hashed_password == hash_password("test", "password")


def test_ticket_login_sends_authtype_99_with_the_same_user_and_hub():
    ev, auth, _ = serve(client(TicketLogin(TICKET)), WELCOME)
    assert isinstance(ev, Welcomed)
    assert (auth.authtype, auth.ticket, auth.username, auth.hubname) == (AuthType.TICKET, TICKET, "test", "lab")


def test_redirect_is_reported_and_answered_with_an_empty_pack():
    c = client()
    ev, _, s = serve(c, REDIRECT)
    assert isinstance(ev, Redirected) and ev.redirect == REDIRECT
    s.receive_data(c.data_to_send())
    assert s.next_pack() == Pack()


@pytest.mark.parametrize("current, chosen", [(5555, 5555), (443, 443), (992, 443)])
def test_redirect_port_choice_keeps_the_current_port_if_listed(current, chosen):
    assert REDIRECT.choose_port(current) == chosen


def test_refusal_raises_server_error_with_the_code():
    with pytest.raises(ServerError) as e:
        serve(client(), ErrorReply(code=Err.AUTH_FAILED))
    assert e.value.code == Err.AUTH_FAILED


def test_a_hello_with_an_error_is_refused():
    c = client()
    s = PackServerChannel()
    s.receive_data(c.initiate())
    s.next_signature()
    with pytest.raises(ServerError) as e:
        c.receive_data(s.send_pack(ErrorReply(code=Err.HUB_IS_BUSY).to_pack(), None))
    assert e.value.code == Err.HUB_IS_BUSY


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\n403",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xff\xff\xff",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"",  # the server closed
])
def test_malformed_or_missing_hello_is_a_protocol_error(reply):
    c = client()
    c.initiate()
    with pytest.raises(ProtocolError):
        c.receive_data(reply)


def test_hello_without_a_20_byte_random_is_not_a_vpn_server():
    c = client()
    c.initiate()
    p = Pack()
    p.add_str("hello", "x")
    p.add_data("random", b"short")
    with pytest.raises(ProtocolError) as e:
        c.receive_data(PackServerChannel().send_pack(p, None))
    assert e.value.code == Err.SERVER_IS_NOT_VPN


def test_data_before_initiate_or_after_the_end_is_refused():
    with pytest.raises(ProtocolError):
        client().receive_data(b"x")
    c = client()
    serve(c, WELCOME)
    with pytest.raises(ProtocolError):
        c.receive_data(b"more")
    with pytest.raises(ValueError):
        c.initiate()
