"""The binary admin RPC core (node/admin/binary_rpc.py): the admin login
check, the u32-length framing of calls and replies, and bad frames."""

from __future__ import annotations

import struct

import pytest

from node.admin.binary_rpc import (
    ADMIN_FRAME_LIMIT, AdminCall, AdminLogin, AdminLoginRefused, FrameError, FrameReader, check_login, error_pack,
    frame, parse_login, reply_pack,
)
from node.softether.errors import Err
from node.softether.pack import Pack
from node.softether.sha0 import EMPTY_PASSWORD_HASH, hash_admin_password, hash_password, secure_password
from node.state import model

RANDOM = bytes(range(20))


def _config(server_type: int = model.SERVER_STANDALONE) -> model.Server:
    hub = model.Hub("Lab", hashed_password=hash_admin_password("hubpw"),
                    secure_password=hash_password("administrator", "hubpw"))
    nopw = model.Hub("Open", hashed_password=EMPTY_PASSWORD_HASH)
    config = model.Server(admin_password_hash=hash_admin_password("srvpw"), listeners=[], hubs=[hub, nopw])
    config.farm.server_type = server_type
    return config


def _login(password: str, hub: str = "") -> AdminLogin:
    return AdminLogin(hubname=hub, secure_password=secure_password(hash_admin_password(password), RANDOM))


# (case, config server type, login, client is local) → hub admin of, or the error code
LOGINS = [
    ("server admin", model.SERVER_STANDALONE, _login("srvpw"), False, None),
    ("server admin on a member", model.SERVER_MEMBER, _login("srvpw"), False, None),
    ("wrong server password", model.SERVER_STANDALONE, _login("nope"), True, Err.ACCESS_DENIED),
    ("hub admin, case-insensitive name", model.SERVER_STANDALONE, _login("hubpw", "lab"), False, "Lab"),
    ("hub admin on a controller", model.SERVER_CONTROLLER, _login("hubpw", "Lab"), False, "Lab"),
    ("hub admin on a member", model.SERVER_MEMBER, _login("hubpw", "Lab"), True, Err.NOT_ENOUGH_RIGHT),
    ("wrong hub password", model.SERVER_STANDALONE, _login("srvpw", "Lab"), False, Err.ACCESS_DENIED),
    ("unknown hub", model.SERVER_STANDALONE, _login("hubpw", "Nope"), False, Err.HUB_NOT_FOUND),
    ("hub without password, remote", model.SERVER_STANDALONE, _login("", "Open"), False,
     Err.NULL_PASSWORD_LOCAL_ONLY),
    ("hub without password, local", model.SERVER_STANDALONE, _login("", "Open"), True, Err.ACCESS_DENIED),
]


@pytest.mark.parametrize("case,server_type,login,local,expected", LOGINS, ids=[c[0] for c in LOGINS])
def test_check_login(case, server_type, login, local, expected):
    config = _config(server_type)
    if isinstance(expected, int):
        with pytest.raises(AdminLoginRefused) as info:
            check_login(config, login, RANDOM, client_is_local=local)
        assert info.value.code == expected
    else:
        assert check_login(config, login, RANDOM, client_is_local=local) == expected


def test_the_proof_is_bound_to_this_connections_random():
    login = _login("srvpw")
    with pytest.raises(AdminLoginRefused):
        check_login(_config(), login, bytes(20), client_is_local=True)


def test_parse_login():
    p = Pack()
    p.add_str("method", "admin")
    p.add_str("hubname", " Lab ")
    p.add_data("secure_password", b"\x01" * 20)
    assert parse_login(p) == AdminLogin(hubname="Lab", secure_password=b"\x01" * 20)
    p.remove("hubname")
    assert parse_login(p).hubname == ""
    for bad in (b"", b"\x01" * 19, b"\x01" * 21):
        p.remove("secure_password")
        p.add_data("secure_password", bad)
        with pytest.raises(FrameError) as info:
            parse_login(p)
        assert info.value.code == Err.PROTOCOL_ERROR


# A call as vpncmd frames it: u32 length, then the PACK.
TEST_CALL = Pack()
TEST_CALL.add_str("function_name", "Test")
TEST_CALL.add_int("IntValue", 7)
TEST_CALL_BYTES = bytes.fromhex(
    "0000003d"                                               # frame length 61
    "00000002"                                               # 2 elements
    "0000000e" + b"function_name".hex() + "00000002 00000001 00000004" + b"Test".hex() +
    "00000009" + b"IntValue".hex() + "00000000 00000001 00000007")


def test_frame_bytes():
    assert frame(TEST_CALL) == TEST_CALL_BYTES


def test_frame_reader_whole_and_byte_by_byte():
    expected = AdminCall(method="Test", params={"intvalue_u32": 7, "intvalue_bool": True})
    reader = FrameReader()
    reader.receive_data(TEST_CALL_BYTES * 2)
    assert reader.next_call() == expected
    assert reader.next_call() == expected
    assert reader.next_call() is None and not reader.mid_frame
    for i, byte in enumerate(TEST_CALL_BYTES):
        assert reader.next_call() is None
        reader.receive_data(bytes([byte]))
        assert reader.mid_frame or i == len(TEST_CALL_BYTES) - 1
    assert reader.next_call() == expected


def test_a_call_without_function_name_names_no_method():
    reader = FrameReader()
    reader.receive_data(frame(Pack()))
    assert reader.next_call() == AdminCall(method="", params={})


@pytest.mark.parametrize("data", [
    struct.pack(">I", ADMIN_FRAME_LIMIT + 1),          # oversized length: refused before reading the body
    struct.pack(">I", 0xFFFFFFFF),
    struct.pack(">I", 8) + b"\x00\x00\x00\x01\x00\x00\x00\x00",  # element name length 0
    struct.pack(">I", 12) + b"\xff" * 12,                # claims too many elements
    struct.pack(">I", 4) + b"\x00\x00\x00\x05",          # 5 elements announced, none there
], ids=["over limit", "u32 max", "name length 0", "garbage", "truncated PACK"])
def test_bad_frames(data):
    reader = FrameReader()
    reader.receive_data(data)
    with pytest.raises(FrameError) as info:
        reader.next_call()
    assert info.value.code == Err.PROTOCOL_ERROR


def test_a_frame_in_progress_holds_at_most_its_own_bytes():
    reader = FrameReader(limit=64)
    reader.receive_data(struct.pack(">I", 64) + b"\0" * 10)
    assert reader.next_call() is None and reader.mid_frame
    with pytest.raises(FrameError):
        reader = FrameReader(limit=64)
        reader.receive_data(struct.pack(">I", 65))
        reader.next_call()


def test_replies():
    assert frame(error_pack(Err.NOT_SUPPORTED)) == bytes.fromhex(
        "00000019" "00000001" "00000006" + b"error".hex() + "00000000 00000001 00000021")
    p = reply_pack({"IntValue_u32": 7, "StrValue_str": "7", "Online_bool": True})
    assert (p.get_int("IntValue"), p.get_str("StrValue"), p.get_int("Online"), p.get_int("error")) == (7, "7", 1, 0)
