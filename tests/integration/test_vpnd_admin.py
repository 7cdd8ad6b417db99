"""vpnd's admin API over real TLS on loopback: authority, errors, hostile input."""

from __future__ import annotations

import json
import socket
import threading
import time

from node.softether.errors import Err
from node.state.tlscert import client_context
from tests.vpnd_proc import rpc_raw


def _ok(doc):
    assert "result" in doc, doc
    return doc["result"]


def _err(doc):
    assert "error" in doc, doc
    return doc["error"]["code"]


def test_hub_and_user_lifecycle(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": "Sales", "Online_bool": True,
                                "AdminPasswordPlainText_str": "hubpw"}))
    assert _err(vpnd.call("CreateHub", {"HubName_str": "SALES"})) == Err.HUB_ALREADY_EXISTS
    assert _err(vpnd.call("CreateHub", {"HubName_str": "bad/name"})) == Err.INVALID_PARAMETER
    assert _err(vpnd.call("CreateHub", {"HubName_str": "x", "HubType_u32": 1})) == Err.INVALID_PARAMETER
    hubs = _ok(vpnd.call("EnumHub"))["HubList"]
    assert [h["HubName_str"] for h in hubs] == ["Sales"]
    _ok(vpnd.call("CreateUser", {"HubName_str": "Sales", "Name_str": "alice", "AuthType_u32": 1,
                                 "Auth_Password_str": "pw", "Realname_utf": "Alice A."}))
    assert _err(vpnd.call("CreateUser", {"HubName_str": "Sales", "Name_str": "ALICE",
                                         "AuthType_u32": 1})) == Err.USER_ALREADY_EXISTS
    user = _ok(vpnd.call("GetUser", {"HubName_str": "sales", "Name_str": "alice"}))
    assert user["Realname_utf"] == "Alice A." and user["AuthType_u32"] == 1
    assert [u["Name_str"] for u in _ok(vpnd.call("EnumUser", {"HubName_str": "Sales"}))["UserList"]] == ["alice"]
    _ok(vpnd.call("SetHubOnline", {"HubName_str": "Sales", "Online_bool": False}))
    assert _ok(vpnd.call("GetHub", {"HubName_str": "Sales"}))["Online_bool"] is False
    _ok(vpnd.call("DeleteUser", {"HubName_str": "Sales", "Name_str": "alice"}))
    assert _err(vpnd.call("GetUser", {"HubName_str": "Sales", "Name_str": "alice"})) == Err.OBJECT_NOT_FOUND
    _ok(vpnd.call("DeleteHub", {"HubName_str": "Sales"}))
    assert _err(vpnd.call("GetHub", {"HubName_str": "Sales"})) == Err.HUB_NOT_FOUND


def test_config_survives_restart_and_password_change(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": "Keep", "Online_bool": True}))
    _ok(vpnd.call("SetServerPassword", {"PlainTextPassword_str": "new-pw"}))
    assert vpnd.call("Test", password="test-admin-pw") == {"http_status": 401}
    assert _err(vpnd.call("SetServerPassword", {"PlainTextPassword_str": ""}, password="new-pw")) \
        == Err.INVALID_PARAMETER
    assert vpnd.stop() == 0
    vpnd.password = "new-pw"
    vpnd.start()
    assert [h["HubName_str"] for h in _ok(vpnd.call("EnumHub"))["HubList"]] == ["Keep"]


def test_wrong_password_is_401_and_daemon_keeps_serving(vpnd):
    for _ in range(3):
        assert vpnd.call("GetServerInfo", password="wrong") == {"http_status": 401}
    info = _ok(vpnd.call("GetServerInfo"))
    assert info["ServerVerInt_u32"] == 501 and info["ServerType_u32"] == 0
    assert "wrong server administrator password" in vpnd.log()


def test_hub_admin_is_confined_to_its_hub(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": "A", "Online_bool": True, "AdminPasswordPlainText_str": "apw"}))
    _ok(vpnd.call("CreateHub", {"HubName_str": "B", "Online_bool": True, "AdminPasswordPlainText_str": "bpw"}))
    _ok(vpnd.call("CreateHub", {"HubName_str": "NoPw", "Online_bool": True}))
    as_a = dict(hub="A", password="apw")
    _ok(vpnd.call("CreateUser", {"HubName_str": "A", "Name_str": "u1", "AuthType_u32": 1,
                                 "Auth_Password_str": "x"}, **as_a))
    assert [h["HubName_str"] for h in _ok(vpnd.call("EnumHub", **as_a))["HubList"]] == ["A"]
    assert _err(vpnd.call("CreateUser", {"HubName_str": "B", "Name_str": "u1", "AuthType_u32": 1},
                          **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("GetHub", {"HubName_str": "B"}, **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("CreateHub", {"HubName_str": "C"}, **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("DeleteHub", {"HubName_str": "A"}, **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("SetServerPassword", {"PlainTextPassword_str": "x"}, **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("GetServerStatus", **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("EnumLocalBridge", **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("EnumSession", {"HubName_str": "B"}, **as_a)) == Err.NOT_ENOUGH_RIGHT
    assert _err(vpnd.call("SetHub", {"HubName_str": "A", "HubType_u32": 0, "Online_bool": True,
                                     "HashedPassword_bin": "+WzqGYrR3VYXrAhKPZLGEHcIwO8=",    # SHA0("")
                                     "SecurePassword_bin": "bpw3X/O5E8a6G6ccnl4uXmDtkwI="},
                          **as_a)) == Err.INVALID_PARAMETER
    # wrong hub password, and a hub without an admin password, are refused
    assert vpnd.call("EnumHub", hub="A", password="bpw") == {"http_status": 401}
    assert vpnd.call("EnumHub", hub="NoPw", password="") == {"http_status": 401}
    hub = _ok(vpnd.call("SetHub", {"HubName_str": "A", "HubType_u32": 0, "Online_bool": True,
                                   "MaxSession_u32": 5}, **as_a))
    assert hub["MaxSession_u32"] == 5
    # the hub password was kept (SetHub without a password keeps it)
    _ok(vpnd.call("GetHub", {"HubName_str": "A"}, **as_a))


def test_garbage_json_rpc_answers_errors(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": "h", "Online_bool": True}))
    hdr = {"X-VPNADMIN-PASSWORD": vpnd.password}
    cases = [b"not json", b"[1,2]", b'{"jsonrpc":"1.0","method":"Test"}', b'{"jsonrpc":"2.0"}',
             b'{"jsonrpc":"2.0","method":"Test","params":[1]}', b"\xff\xfe",
             b'{"jsonrpc":"2.0","id":7,"method":"CreateHub","params":{"HubName_str":5}}',
             b'{"jsonrpc":"2.0","id":"x","method":"CreateUser","params":{"HubName_str":"h","Name_str":"u","AuthType_u32":-1}}']
    for body in cases:
        status, data = rpc_raw(vpnd.port, body, hdr)
        assert status == 200
        doc = json.loads(data)
        assert doc["error"]["code"] == Err.INVALID_PARAMETER, (body, doc)
    doc = vpnd.call("NoSuchMethod")
    assert doc["error"]["code"] == Err.NOT_SUPPORTED and doc["id"] == "t"
    status, data = rpc_raw(vpnd.port, b'{"jsonrpc":"2.0","id":42,"method":"Test","params":{"IntValue_u32":3}}', hdr)
    assert json.loads(data) == {"result": {"IntValue_u32": 3, "Int64Value_u64": 0, "StrValue_str": "3",
                                           "UniStrValue_utf": ""}, "jsonrpc": "2.0", "id": "0"}


def _tls(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return client_context().wrap_socket(raw)


def test_hostile_clients_do_not_block_others(vpnd):
    # 1. non-TLS bytes, 2. a TLS client that sends half a request and stalls,
    # 3. a huge body, 4. malformed HTTP — while a good client keeps working.
    plain = socket.create_connection(("127.0.0.1", vpnd.port), timeout=10)
    plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 10)
    stalled = _tls(vpnd.port)
    stalled.sendall(b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    slow_head = _tls(vpnd.port)
    slow_head.sendall(b"POST /api/ HTTP/1.1\r\nHo")
    huge = _tls(vpnd.port)
    huge.sendall(b"POST /api/ HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n")
    assert huge.recv(4096).startswith(b"HTTP/1.1 413")
    bad = _tls(vpnd.port)
    bad.sendall(b"\x00\x01 NONSENSE\r\n\r\n")
    assert bad.recv(4096).startswith(b"HTTP/1.1 400")
    chunked_flood = _tls(vpnd.port)
    chunked_flood.sendall(b"POST /api/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    stop = time.monotonic() + 2
    sent = 0
    try:
        while time.monotonic() < stop and sent < 6_000_000:
            chunked_flood.sendall(b"10000\r\n" + b"a" * 0x10000 + b"\r\n")
            sent += 0x10000
    except OSError:
        pass  # the node closed it: what we want
    results = []

    def good_client():
        for i in range(20):
            results.append("result" in vpnd.call("Test", {"IntValue_u32": i}))
    t = threading.Thread(target=good_client)
    t.start()
    t.join(30)
    assert results == [True] * 20
    for s in (plain, stalled, slow_head, huge, bad, chunked_flood):
        s.close()
    assert vpnd.proc.poll() is None


def test_large_admin_body_needs_valid_credentials_first(vpnd):
    pad = "x" * 1_000_000
    body = json.dumps({"jsonrpc": "2.0", "id": "p", "method": "Test", "params": {"Pad_str": pad}}).encode()
    status, data = rpc_raw(vpnd.port, body, {"X-VPNADMIN-PASSWORD": vpnd.password})
    assert status == 200 and json.loads(data)["result"]["IntValue_u32"] == 0
    for password in ("wrong", ""):    # refused on the headers, before any of the body is read
        s = _tls(vpnd.port)
        s.sendall(b"POST /api/ HTTP/1.1\r\nHost: x\r\nX-VPNADMIN-PASSWORD: " + password.encode()
                  + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
        s.close()
    # a small body with a wrong password still gets SoftEther's 401
    assert vpnd.call("Test", password="wrong") == {"http_status": 401}


def test_other_paths_get_small_http_answers(vpnd):
    s = _tls(vpnd.port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 404")
    s.sendall(b"GET /api/DeleteHub?HubName_str=H HTTP/1.1\r\nHost: x\r\nX-VPNADMIN-PASSWORD: "
              + vpnd.password.encode() + b"\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 405")
    s.close()
