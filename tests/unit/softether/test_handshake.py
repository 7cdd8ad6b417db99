import base64
import ipaddress
import zlib

import pytest

from node.softether.errors import Err
from node.softether.handshake import (
    DEFAULT_POLICY, MAX_NOOP_PER_SESSION, NOOP_IGNORE, NOOP_REPLY_WANTED,
    AdditionalConnectReply, AdditionalConnectRequest, AuthRequest, AuthType,
    Direction, ErrorReply, Hello, Redirect, ServerError, Welcome, check_error,
    noop_kind, noop_pack, parse_login_reply, request_method,
)
from node.softether.pack import Pack
from node.softether.protocol_error import ProtocolError
from node.softether.sha0 import hash_password, secure_password
from tests.unit.softether.test_pack import HELLO_HEX  # §2.3's hello, byte for byte

RANDOM = bytes(range(0x10, 0x24))
KEY = bytes(range(20))


def _rt(record):
    """Round trip through the wire bytes."""
    return Pack.decode(record.to_pack().encode())


def test_hello_is_the_worked_example_byte_for_byte():
    hello = Hello(random=RANDOM, hello="Py VPN", version=501, build=9674)
    assert hello.to_pack().encode() == bytes.fromhex(HELLO_HEX)
    assert Hello.from_pack(Pack.decode(bytes.fromhex(HELLO_HEX))) == hello


@pytest.mark.parametrize("mutate", [
    lambda p: p.remove("random"),
    lambda p: (p.remove("random"), p.add_data("random", b"\0" * 19)),
    lambda p: (p.remove("random"), p.add_str("random", "x" * 20)),   # wrong type = absent
    lambda p: p.remove("hello"),
])
def test_hello_the_client_cannot_use(mutate):
    p = Hello(random=RANDOM).to_pack()
    mutate(p)
    with pytest.raises(ProtocolError) as info:
        Hello.from_pack(p)
    assert info.value.code == Err.SERVER_IS_NOT_VPN


def test_hello_with_error_raises_server_error():
    p = Hello(random=RANDOM).to_pack()
    p.add_int("error", Err.HUB_IS_BUSY)
    with pytest.raises(ServerError) as info:
        Hello.from_pack(p)
    assert info.value.code == Err.HUB_IS_BUSY


def test_password_login_round_trip_and_fields():
    proof = secure_password(hash_password("alice", "pw"), RANDOM)
    req = AuthRequest(hubname="HUB1", username="alice", authtype=AuthType.PASSWORD,
                      secure_password=proof, unique_id=b"\x07" * 20,
                      client_hostname="box", client_os_name="Linux")
    p = _rt(req)
    assert request_method(p) == "login"
    assert p.get_data("secure_password") == proof
    assert p.get_int("authtype") == 1
    assert p.get_str("client_str") == p.get_str("hello")
    assert p.get_int("use_encrypt") == 1 and p.get_int("max_connection") == 1
    assert "ticket" not in p
    assert AuthRequest.from_pack(p) == req


@pytest.mark.parametrize("req,present", [
    (AuthRequest(hubname="H", username="u"), []),
    (AuthRequest(hubname="H", username="u", authtype=AuthType.TICKET, ticket=KEY), ["ticket"]),
    (AuthRequest(hubname="H", username="u", authtype=AuthType.PLAIN_PASSWORD,
                 plain_password="pw"), ["plain_password"]),
    (AuthRequest(hubname="H", username="u", authtype=AuthType.CERT, cert=b"der", sign=b"s" * 256),
     ["cert", "sign"]),
])
def test_login_auth_types(req, present):
    p = _rt(req)
    for name in ("secure_password", "ticket", "plain_password", "cert", "sign"):
        assert (name in p) == (name in present)
    assert AuthRequest.from_pack(p) == req


def test_login_from_softether_shaped_pack_ignores_the_rest():
    # The fields a 5.01 client sends, incl. NODE_INFO and bools we ignore.
    p = Pack()
    p.add_str("method", "LOGIN")
    p.add_str("hubname", "DEFAULT")
    p.add_str("username", "test")
    p.add_int("authtype", 1)
    p.add_data("secure_password", KEY)
    p.add_str("client_str", "SoftEther VPN Client Developer Edition")
    p.add_str("hello", "SoftEther VPN Client Developer Edition")
    p.add_int("client_ver", 501)
    p.add_int("client_build", 9674)
    p.add_int("max_connection", 8)
    p.add_int("use_encrypt", 1)
    p.add_int("use_compress", 0)
    p.add_int("half_connection", 0)
    p.add_bool("qos", True)
    p.add_bool("support_bulk_on_rudp", True)
    p.add_data("unique_id", b"\x01" * 20)
    p.add_int("rudp_bulk_max_version", 2)
    p.add_str("ClientHostname", "laptop")
    p.add_int("ClientProductBuild", int.from_bytes((9674).to_bytes(4, "little"), "big"))
    p.add_ip("ClientIpAddress", "10.0.0.2")
    p.add_data("pencore", b"\0" * 17)
    req = AuthRequest.from_pack(p)
    assert (req.hubname, req.username, req.authtype, req.secure_password) == ("DEFAULT", "test", 1, KEY)
    assert req.max_connection == 8 and req.qos and req.use_encrypt and not req.use_compress
    assert req.client_hostname == "laptop" and req.unique_id == b"\x01" * 20
    assert not req.is_server_or_bridge
    assert AuthRequest(hubname="h", username="u", client_str="SoftEther VPN Bridge").is_server_or_bridge


@pytest.mark.parametrize("mutate", [
    lambda p: p.remove("method"),
    lambda p: (p.remove("method"), p.add_str("method", "enum_hub")),
    lambda p: p.remove("hubname"),
    lambda p: p.remove("username"),
    lambda p: (p.remove("username"), p.add_unistr("username", "u")),  # wrong type
])
def test_login_pack_a_server_refuses(mutate):
    p = AuthRequest(hubname="H", username="u").to_pack()
    mutate(p)
    with pytest.raises(ProtocolError) as info:
        AuthRequest.from_pack(p)
    assert info.value.code == Err.PROTOCOL_ERROR


def test_welcome_defaults_are_the_simple_server():
    w = Welcome(session_name="SID-ALICE-1", connection_name="CID-1", session_key=KEY)
    p = _rt(w)
    assert p.get_int("max_connection") == 1
    assert p.get_int("qos") == 0 and p.get_int("half_connection") == 0
    assert p.get_int("use_encrypt") == 1
    assert p.get_int("timeout") == 20000
    assert p.get_int("policy:Ver3") == 1
    assert p.get_int("policy:Access") == 1 and p.get_int("policy:MaxConnection") == 32
    assert p.get_int("policy:TimeOut") == 20
    assert p.element("policy:NoQoS").values == (0,)
    assert p.get_data("session_key") == KEY
    assert "Msg" not in p
    got = Welcome.from_pack(p)
    assert got.policy == {**DEFAULT_POLICY, "Ver3": 1}
    assert (got.session_name, got.connection_name, got.session_key, got.timeout_ms) == (
        "SID-ALICE-1", "CID-1", KEY, 20000)


def test_welcome_message_and_policy_override():
    w = Welcome(session_name="S", connection_name="C", session_key=KEY, msg="héllo",
                policy={**DEFAULT_POLICY, "AutoDisconnect": 3600}, use_compress=True, timeout_ms=30000)
    got = Welcome.from_pack(_rt(w))
    assert got.msg == "héllo" and got.policy["AutoDisconnect"] == 3600 and got.use_compress


@pytest.mark.parametrize("kwargs", [
    dict(session_key=b"short"),
    dict(session_key=KEY, timeout_ms=0),
])
def test_welcome_local_mistakes(kwargs):
    with pytest.raises(ValueError):
        Welcome(session_name="S", connection_name="C", **kwargs).to_pack()


@pytest.mark.parametrize("mutate", [
    lambda p: p.remove("session_name"),
    lambda p: p.remove("connection_name"),
    lambda p: (p.remove("session_key"), p.add_data("session_key", b"\0" * 21)),
    lambda p: (p.remove("timeout"), p.add_int64("timeout", 20000)),  # INT64 reads as 0
])
def test_welcome_the_client_cannot_use(mutate):
    p = Welcome(session_name="S", connection_name="C", session_key=KEY).to_pack()
    mutate(p)
    with pytest.raises(ProtocolError) as info:
        Welcome.from_pack(p)
    assert not isinstance(info.value, ServerError)


def test_error_reply_round_trip_and_login_refusal():
    p = _rt(ErrorReply(code=Err.AUTH_FAILED, no_save_password=True))
    assert ErrorReply.from_pack(p) == ErrorReply(code=Err.AUTH_FAILED, no_save_password=True)
    with pytest.raises(ServerError) as info:
        parse_login_reply(p)
    assert info.value.code == Err.AUTH_FAILED and info.value.no_save_password
    check_error(_rt(ErrorReply(code=0)))  # error 0 is success


def test_redirect_round_trip_and_wire_layout():
    r = Redirect(ip=ipaddress.IPv4Address("192.168.1.10"), ports=(443, 5555), ticket=KEY,
                 cert=b"\x30\x82DER", msg="go")
    p = _rt(r)
    assert p.get_int("Redirect") == 1
    assert p.get_int("Ip").to_bytes(4, "big") == bytes.fromhex("0a01a8c0")
    assert p.get_int("Ip@ipv6_bool") == 0 and p.get_data("Ip@ipv6_array") == bytes(16)
    assert p.get_ints("Port") == (443, 5555)
    assert p.get_data("Msg") == b"go" and "error" not in p
    assert parse_login_reply(p) == r
    assert r.choose_port(5555) == 5555 and r.choose_port(992) == 443


@pytest.mark.parametrize("mutate", [
    lambda p: p.remove("Port"),
    lambda p: (p.remove("Ticket"), p.add_data("Ticket", b"\0" * 19)),
    lambda p: [p.remove(n) for n in ("Ip", "Ip@ipv6_bool", "Ip@ipv6_array", "Ip@ipv6_scope_id")],
])
def test_redirect_the_client_cannot_use(mutate):
    p = Redirect(ip=ipaddress.IPv4Address("10.0.0.1"), ports=(443,), ticket=KEY, cert=b"").to_pack()
    mutate(p)
    with pytest.raises(ProtocolError):
        parse_login_reply(p)


def test_parse_login_reply_gives_welcome_without_redirect():
    w = Welcome(session_name="S", connection_name="C", session_key=KEY)
    assert parse_login_reply(_rt(w)) == Welcome.from_pack(_rt(w))


def test_additional_connect_round_trip():
    req = AdditionalConnectRequest(session_key=KEY)
    p = _rt(req)
    assert request_method(p) == "additional_connect"
    assert AdditionalConnectRequest.from_pack(p) == req
    reply = _rt(AdditionalConnectReply(direction=Direction.CLIENT_TO_SERVER))
    assert reply.get_int("error") == 0
    assert AdditionalConnectReply.from_pack(reply).direction == Direction.CLIENT_TO_SERVER
    with pytest.raises(ServerError) as info:
        AdditionalConnectReply.from_pack(_rt(ErrorReply(code=Err.TOO_MANY_CONNECTION)))
    assert info.value.code == Err.TOO_MANY_CONNECTION


def test_additional_connect_without_20_byte_key_is_protocol_error():
    p = AdditionalConnectRequest(session_key=KEY).to_pack()
    p.remove("session_key")
    p.add_data("session_key", b"\0" * 16)
    with pytest.raises(ProtocolError) as info:
        AdditionalConnectRequest.from_pack(p)
    assert info.value.code == Err.PROTOCOL_ERROR


def test_noop_rules():
    assert noop_kind(AuthRequest(hubname="h", username="u").to_pack()) == 0
    assert noop_kind(noop_pack(NOOP_IGNORE)) == NOOP_IGNORE
    assert noop_kind(noop_pack(NOOP_REPLY_WANTED)) == NOOP_REPLY_WANTED
    assert noop_kind(noop_pack(7)) == NOOP_REPLY_WANTED  # 5.01: any non-zero
    reply = noop_pack()
    assert (reply.get_int("error"), reply.get_int("noop")) == (0, 2)
    assert MAX_NOOP_PER_SESSION == 30


def test_request_method_missing():
    with pytest.raises(ProtocolError):
        request_method(Pack())


# ---- golden captures from the real Debian 5.01.9674 client ---------------
# Captured on loopback from `vpnclient` logging in (user alice, password
# "secret", hub HUB1) to a test server built on these cores, which it accepted
# (session established); then its additional_connect. zlib + base64.
REAL_LOGIN_B64 = (
    "eNqdVglUE1cUDYtKBDQWUTYhINgSiiit2ENlVQrKElokoJ4yTiYDGUlmwiyExVbkoCBYFWvBorZ6"
    "XNC6oFa6Waui1hOqiAZFrHVBK9pKBa1aW5TOZJFkMhHbnzPzz/n3vv/e/++9m+HxeCk8Ho8PUqSc"
    "LFTBPP2wMTxDpRSikA0sBjTT88jpCgRGyQSMIFFQyZjYGui2+Ur6LdDjM1UxMhkOE4TRnGYsoudR"
    "LDjMxJ+AZzk8WfxoRJUfBoA4DhYOYunBaSnFMIXJMZnhzUkkIEwFA4iMRXbWk8VEivnhBTNgKQKi"
    "wviU9JAkBKUK6LVXjNxUHJNREDlTZnpbwcH028lIkcC4Ceg8OVT4Gh1qrhrDlYH0gqOel4rhpDGg"
    "in262cWA6F3EmmasOUA3v2LGYMU9IQ3LJuNIOYwLJakpQj1VOAPOhxX0+XFhnAwhEQwdyJxhG328"
    "OjcP9XfjDOlwgKtohhswi+t0NAAEif+voIz2+QPhMBExCZGDimwAwlAUhgxkU8dD5bBCgf0vnw5y"
    "SsoqffuE9NjJTHMowQJun8wzTAmTcsy0CIYosByEofFVOEZikEVtjqCvu6CQo9mYMVIHWnSaYRaY"
    "o4M1moc5/eX7zJ3LkKPNxnHxrHTZcB3XtNoNs30eRrBu1QuH8ygEhwEpjshyYADHKBJBcwAlJoNZ"
    "1q5GqhJDERLDuThjcEqmootYkQswyaQLizDPJJMBAQFDFL2PCiQIukVlJuGMrptvE1q2R3D73OXe"
    "aPspN71Kir0kTLLSYJzejCOV/MmhUydOon9MBQn0NKvyyYIHlU8W/z/IJ6cll3xyEq0k1klPZjIb"
    "aoTSpumFzAC9QMjMGCwhE+WrUEhBESTdq89bORjClCqQRKQKWNfV+g0G7tGqmLkSlEpFB6kvBAwF"
    "mKpgFd44I0euBCGGo+dmc3F92VymyEAIghUwDnJIRaCR/5wHZIMECcgQwiAvgAwm6Yll52pqh8MQ"
    "Rh+ykMXxZPsGjOqsYmVrgnXmyxdSwGCbcNRU4GA2VsrLy5pdLmwa5ug1Pv5bIu83Nud/no29tcm+"
    "qcM9uohe93mBOZAfarJDCWQjfFT+w+15XydJDnS+Hblxe8mpOr8fJxTsLMZc12Ip743Irt+sFFyq"
    "b4xYl9T7V8t3VfJaYnrPXcEb3etFE0vXVu+Y+zs/8eHn/T2b9uzb0k11hiSIni1av+/GkWkeTcG1"
    "T9J2Bhe87bIOSC5x/q67//i7T7Xn8BUxHePrH2RF+3QltbUy9WctWpWZbpY94+RaFzd3C64lT6db"
    "6SiSR8EzTdVPkHF2V9Btr5IRYjHv0OwngasYMad0PH22nqfgYFS68LcdK0/cepAgurihNjjx94B1"
    "zKYUAeMsgRwCKhCIWXCmQYBpaY6/OycGg1EIL1RZNAUDDdJwDhZn1H1FOEiAWPPvGd3gS4CZRCxM"
    "gqz1Ycx6ymz2Rw6z+lx6zIJmkAwElWFq9nlGSADGhD54KgjlskA6rNkIqRjsA5R2TEtbMrgAwy1D"
    "YhAEtUAcVPQlYjg8cDe222NXi8qitV3TDyQnEbtDtrlWLHEv74uRSLvOvhp1CxBEaq76rpq+K9pu"
    "vN/S09Jcyu7Nc8F32lq+maXRHCJDx+YtzSRbPdNXTZ1fIo4aqenRfFT1xKVBXvwkLvsz22Fu4Djt"
    "07lfHKleWLuw9mDSz6vPV46v8/fZfcX+l/Lvu/HHo67O9Yp/2Bceoj3p5/RVeoJdHH+nX8je+Y8C"
    "fI4+jHw9fm3Ha33qo0c120IabMuaWhZHdeGRPyxsbyfcHs0KE/DuVJXeySqQq7suxKrrsoYrfTfO"
    "2XaL92dn4I2S1MC/V6Nljytsi2MO3f9mQ/vYtgxqe+uWE6Nsqx9/djo/3LN69P6g8xkNqbN+3mwX"
    "EST32hZWmustOpF8feT7mjlD5zhpV/SJf+ufiL3ffW8h/63UgJh7ax8/Cqhbs3qPfInGo6hy1NhJ"
    "zTmxogbXmPXvLu1pqvpJ8ODKqeuOi3e0ztk74es1NhuWL5jy6ZgsceIa0ar0uMkVORkd/gcdOir5"
    "nZX2F49Vf1jj39Rwyk19/Ki4s9NO6ym7PC+Nkvs79XlM67o1Bm05e22l49a+TejuzHdaClfCwbu/"
    "fVr3fdn5WWc+aloE/3Pd/c6N9aXtmYXpXfF5z+52X626WXnST9mIfcy/1/qJZMmVFLXTm1mOdZq8"
    "0KdbRUu/vODxS9auSRE1R6LCe8HNieGL+I2VZ9qjf006LJpYdjagaONhaLZzSf/N/fzT/dSXQ24I"
    "vOeXNV9uuhtx4Oay+MhWUWVxW9u0f66q1Su8T/pvrPauyeytnuI6L06M2DgeE7Zsn1TT2z/vzHG3"
    "sY6NXg71RVWl2PLlaH/pDFFhpkN4kYf41I4wbc+lD4LEJ9t/dC93iXB5PVG95I9r19yk+2pqtYdv"
    "++K5Da+urKDu85O/0C72Kx/zQet7y5Qaf8etRHHQzqnH6n2Hf/sv4fgzOg=="
)
REAL_LOGIN_RANDOM = bytes.fromhex("31bcc3dd71e1ab34d89512cb43176857ec8f5f3a")
REAL_ADDITIONAL_B64 = (
    "eNpjYGBgY2Bg4E3OyUzNK4lPKs3MSWGAAEYGBtVTQJobKldcUgTkMUFkGNSC89NKXEsyUosUwgL8"
    "FJzBahRcUstSc/ILgIKuKZklmfl5SPrLUosQJjN+BdLsuaklGfkpSKYKJaZA9CXmxCfn5+WlJpcA"
    "RXmKU4uLgYLx2amVUIUgLKJ8ZebXb8/Dr3FkXdonX3xgvl+hdS9QnKMgNS85vygVoZTx1hLLLwxV"
    "HOfWNPuwCypudjp8492XudO6nHv+OJtKnRa53bvK/pn2h3s6+plfudrk7///z2DpyL9swvrP/7lP"
    "lt4/KpyWOsHdZNUxswf3LUs2dkZ7V87sNdvz81NiaOnNAoazmxiPSR/+J79uQcjz+qP5QmevvuLa"
    "UxOc80ZI5/Yd1Xd93ztlRGaG7tiSt07OJ/n/gh8f6vYWOTi88J0vK3OhbD5rpuz9hNhZ9eJhd1ns"
    "mm/qrfv+6gLvdvbaG1tmiX2tcFT7y/pWiJFvqapevqr3vzVV+yrXnvpvxvw3+Nf79DMqRzJfRfm2"
    "6h43OhSVzVxzNLTh5715jZosjyM+O54t6Z1XL1pX2WjAvipK6yvjo4SMmvzMidUz9d6vPLjyppNC"
    "zNuTfy9nOAXMazWX0uNdq+r2aGGqdmaQR+6f7FTP2aedzS1l10ee5jyw+8isioVJ38TmzGiwcjed"
    "dupIns71S5s2mkz4xRVsEB+z8LdIrBtzXZq9nHm9zdSIpQu6Fb7e7H18jHmxVGvR6h7bONt3Ye4u"
    "S1deYN901dFqpv7i3T/eHFy41SRU4vF8r39iV706Wf6JR+U/ra/c38japc9js+Fokpj8UgaFzBXV"
    "b9a25ru++9dq2rIkWOTB/UWTL8m/+rshRu/ljt87n7gmrpn2/yozAJFgKOU="
)


def _capture(b64):
    return zlib.decompress(base64.b64decode("".join(b64)))


def test_real_client_login_pack():
    raw = _capture(REAL_LOGIN_B64)
    p = Pack.decode(raw)
    assert p.encode() == raw  # decode/encode is the identity on real traffic
    req = AuthRequest.from_pack(p)
    assert (req.hubname, req.username, req.authtype) == ("HUB1", "alice", AuthType.PASSWORD)
    assert req.secure_password == secure_password(hash_password("alice", "secret"), REAL_LOGIN_RANDOM)
    assert req.client_str == "SoftEther VPN Client Developer Edition"
    assert (req.client_ver, req.client_build, req.max_connection) == (501, 9674, 1)
    assert req.qos and req.use_encrypt and not req.use_compress and not req.half_connection
    assert len(req.unique_id) == 20 and req.client_os_name
    # NODE_INFO quirk: its INTs are byte-swapped on the wire
    assert p.get_int("ClientProductBuild") == int.from_bytes((9674).to_bytes(4, "little"), "big")
    assert str(p.get_ip("ClientIpAddress")) == "127.0.0.1"
    assert p.get_str("ProxyHostname") == ""  # empty STR: length 0, no NUL
    assert [e.name for e in p][-1] == "pencore"


def test_real_client_additional_connect_pack():
    raw = _capture(REAL_ADDITIONAL_B64)
    p = Pack.decode(raw)
    assert p.encode() == raw
    req = AdditionalConnectRequest.from_pack(p)
    assert len(req.session_key) == 20
    assert req.client_str == "SoftEther VPN Client Developer Edition"


# From the real Debian 5.01.9674 vpnserver, answering a client built on these
# cores (hub DEFAULT, user alice): its hello and its welcome.
REAL_SERVER_HELLO_B64 = (
    "eNpjYGBgZWBgYEsqzcxJYYAARgYG1VMgwYzUnJx8IIMJIshgG5yfVuJakpFapBAW4KcQnFpUBmS6"
    "pJal5uQXAFmuKZklmfl5ChpmJgpJmSWaChr+Bal5CsH5pUXJqZpAA9iLEvNS8nOhxoGwSGZ73aK3"
    "D1kDV28KuJ6pITAj7cD9N0BxDqDJxUCzEE5i/AoSBpqXnF+UijCBiUfItEpc4WHbmtPRHGJatzuc"
    "REtslr9L/dGTsPh+XeoBuQwpD9H40rO8hW0iktF7Z/Hlf1VJD9l4vLCZgb3h9PHYNF4ZzpKHT1VF"
    "dtxZI5b7zdql4aa6r0WiGLv259ItZZvFt7o+dXjXwymdPOfAqk3JGWpLpHymVzStSj8iz2ShaJG5"
    "3eNdsfJrsVPN3y/6zjj27dv2rJrmtXWePhucAqafWes356iUzYlJ+4OqOPJdDt0p3tPW8SR4k422"
    "l+waFrfnKqU10qu76kX5uLmlomccUPR203x9OMLdxVMid+s+Y76Sq68NepMX/5+xw8bgUfy+CR93"
    "fWHb9yDFQOdNxFnlpd7LJ8+oy/p7xORL1oUbnUrBZdY7275suLXl4pFHc/gvda22aPPITzq7Iz5e"
    "/s2D+Z8lM4RcfCztC7z7Oq0jNjFts97dvrN2n7YiX+tEj7n6rxd47TL/cmRTQsLfsi/ZNk+OW91a"
    "cJ55+6ZvJbNL7lxlOfxTX90zOHedifC6C5dV8mqC9i/iNz/DWHwxedq+U7dl4wP2uz+35AzTmrSi"
    "3OP/Zuafjs4LW7boihzYOvsJT3GkGbdhqvKzVsaF2yPMFrHJ17Oc7uq/t9TdxejYKc47Ue2/s926"
    "hOoiJvW98j9i1H7j7U3WkrXTct4zvBP8dCS8dInVKfO3N2wKJK+5Hw9b3X3i156Vr95K+s4PuBR0"
    "ck3Id21p2UfyO/LarJ5P4t2Tem/1PACICS0r"
)
REAL_SERVER_WELCOME_B64 = (
    "eNpjYGAwZ2BgEEjOz8tLTS7JzM+Lz0vMTQUKMQExIxCzOnu66JoAGSKpeYlJOanxpSkF8UWpyfll"
    "qUWVDBDACKUFMhJz0uIRZqFJC2YWxydWlRalxhenFhdjyvPnJlZg1w3CLL7F6UhcEOAryM/JTK60"
    "ckxOBhqIpl4YJllU4JKRXOCfl4PuXDGYitKSfJfMYqjN6I6CKnLOSE3O9gxA9xKqbJkZeoggy/sm"
    "JqNJC0GlXTycA9wyc0pSi3CYD1aQX5SciiYvgiTvlx+cWlSGYQSykjIzrLaIoSjBYQ7MrRATgH41"
    "IaQAPTCEURT45edhBCdCRUVAYnFxeX5RCpoKUagK38QKZ2wpRQHJFKAal/zyvJz8RHRTeBEqMNzA"
    "jyyH4Qc+hCxmdAoiJEMLsFgLd1h+XmZJflFAflEJLhWlOSWZPvnpmXnFOFKUX75TUWZKOnqCkEKS"
    "BjogObG4xCczNxMzzuXhCkG+dElNSwRaGZRfCoq6vCBHNNXq+FWHZ6TmYQksXriuwPxgHGHllw8y"
    "JjMvHUdIwOXDzHCkWmB6TSxLxZFeEMGFN1HDpDEsgaW3gKLMssTkSqzZB2ZHkCNWaZgRQcGJeSk4"
    "1MASXUhmbqp/KXKqEAFiHqhsWGqRMVopB0uPYT6JeZ7onmcpzEdPPjzQojc+O7USyRiRcyuXZH/e"
    "tdbyyX/xPW8bX+oqx6icAbkLSXm8sRHMsLP9HYmg+IXJotUZ3MHAOsPRx9PZVdcQyFUpLi0oKAIq"
    "jU/OyUzNK4kvLUhJLEmNz8svyUzLTE7EUlVwlAADIh85IPxAOZu3tDgVWEPkgk1D9xlILjUvuaiy"
    "oAQtkDjKchLz4jPRg4ejAKg8vygVoZIpK10h+MCe8soS021WnHVbGppv6Yn3Fp48ofSmzDNgiYj+"
    "oQv+EiryC6da74v5Kaxw4+ac38crGXzaVBUe/Tjw9elfZq6aR9ff8DGv+pXad/lLwXXnWPtPrlHn"
    "M95ODFJYO3enZAjv1Z99DYdsH+9UT//8NkxB6Z1y5qTWe59uHX9/Rz/B2HuG9h710u9c2zQz8+V/"
    "/Y3zDdiT7S+RtErxyvoji30n+M4WnjNdQXLdtq/17Y8+PfGLP3Fv+hdJuw0er5bGR3mKctUdrp+6"
    "bC838825v929ArnX+J5d83Z/7Pfj9n1rXac9Ct2anDax/eLiHQLTpcVepm9cUZkV4uvFqLSV6Xge"
    "u9muF8xluz7e+jLvsswpHSmjUy4cvqebdu8wdLpZranLfCPmlkiO5+RVpbOUff7L/bwqcMbMZrlG"
    "/pSuwmN7pE8v+DPFOeyfuYrfqzpm9vrQE5t9zk763O+1rX/pIp1PC+3fLNxlEO8aLL9H9aZ3G19z"
    "g8HaWd+mdV7bojq58qnzypUbd7u2LJsYO/vuwcTGQ64xngFNshFa3B/d3+ftYsou6utaeUL73KGi"
    "pwU/Z/G13KyUOXN8SknSRxerguS/M7m+bbhltO3zqR9zfiaVqvlxTFFlMk1xqJ+fU3Tn5Lv3XY86"
    "bAPLTW9E3M+z+xS7drKeRKTqhZPJtikNMesd1CawJ+VzdW+R/bz650vfw188nK4s7vBiuec7786S"
    "xjhOp/srZ3143aiusmT1iZvbj6hx/uL+/ZrjYOW3kpfSr7o1lO/ON1+XcnqCk0Wg2ryvt5b1Wr6a"
    "pMyvczfcxW6rhYNmxnqXWXJH5yU9vz1lVtp10y/24pl1F1ZouXe7f487u4vp74mU+edaAf8rr8Y="
)


def test_real_server_hello_and_welcome():
    raw = _capture(REAL_SERVER_HELLO_B64)
    assert Pack.decode(raw).encode() == raw
    hello = Hello.from_pack(Pack.decode(raw))
    assert (hello.version, hello.build, len(hello.random)) == (501, 9674, 20)
    raw = _capture(REAL_SERVER_WELCOME_B64)
    p = Pack.decode(raw)
    assert p.encode() == raw
    w = parse_login_reply(p)
    assert isinstance(w, Welcome)
    assert (w.session_name, w.connection_name, w.timeout_ms, w.max_connection) == (
        "SID-ALICE-1", "CID-4", 20000, 1)
    assert w.use_encrypt and not w.qos and len(w.session_key) == 20
    assert w.policy == {**DEFAULT_POLICY, "Ver3": 1}


def test_our_welcome_uses_only_names_the_real_server_uses():
    real = {e.name for e in Pack.decode(_capture(REAL_SERVER_WELCOME_B64))}
    ours = {e.name for e in Welcome(session_name="S", connection_name="C", session_key=KEY,
                                     msg="m").to_pack()}
    assert ours <= real
    assert {n for n in real if n.startswith("policy:")} <= ours
