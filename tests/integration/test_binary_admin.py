"""vpnd's binary admin RPC (what vpncmd speaks) over real TLS on loopback,
without SoftEther's binaries (tests/compat/test_vpncmd.py drives the real
vpncmd): logins, the same handlers as JSON-RPC, hostile frames."""

from __future__ import annotations

import struct
import time

import pytest

from node.softether.errors import Err
from node.softether.pack import Pack
from tests.admin_rpc_client import AdminRefused, admin_connection, call, closed_by_peer, recv_exact


def _request(**fields: str | int) -> Pack:
    p = Pack()
    for name, value in fields.items():
        if isinstance(value, int):
            p.add_int(name, value)
        else:
            p.add_str(name, value)
    return p


def test_server_administrator_calls_the_json_rpc_handlers(vpnd):
    sock = admin_connection(vpnd.port, vpnd.password)
    info = call(sock, "GetServerInfo")
    assert info.get_int("error") == 0 and info.get_int("ServerBuildInt") == 9674
    created = call(sock, "CreateHub", _request(HubName="Bin", AdminPasswordPlainText="hubpw", Online=1))
    assert created.get_int("error") == 0 and created.get_str("HubName") == "Bin"
    # the same state, seen through JSON-RPC
    assert [h["HubName_str"] for h in vpnd.call("EnumHub")["result"]["HubList"]] == ["Bin"]
    hubs = call(sock, "enumhub")  # method names are case-insensitive, as SoftEther's
    assert hubs.get_strs("HubName") == ("Bin",) and hubs.get_ints("Online") == (1,)
    again = call(sock, "CreateHub", _request(HubName="bin"))
    assert again.get_int("error") == Err.HUB_ALREADY_EXISTS and "HubName" not in again
    assert call(sock, "NoSuchMethod").get_int("error") == Err.NOT_SUPPORTED
    bad_type = call(sock, "CreateHub", _request(HubName="x", HubType=1))
    assert bad_type.get_int("error") == Err.INVALID_PARAMETER
    sock.close()


def test_logins(vpnd):
    with pytest.raises(AdminRefused) as info:
        admin_connection(vpnd.port, "wrong")
    assert info.value.code == Err.ACCESS_DENIED
    vpnd.call("CreateHub", {"HubName_str": "Own", "AdminPasswordPlainText_str": "ownpw"})
    vpnd.call("CreateHub", {"HubName_str": "Other", "AdminPasswordPlainText_str": "otherpw"})
    with pytest.raises(AdminRefused) as info:
        admin_connection(vpnd.port, "otherpw", hub="Own")
    assert info.value.code == Err.ACCESS_DENIED
    with pytest.raises(AdminRefused) as info:
        admin_connection(vpnd.port, "x", hub="Missing")
    assert info.value.code == Err.HUB_NOT_FOUND
    hub_admin = admin_connection(vpnd.port, "ownpw", hub="own")
    assert call(hub_admin, "EnumHub").get_strs("HubName") == ("Own",)
    assert call(hub_admin, "GetHubStatus", _request(HubName="Own")).get_int("error") == 0
    for function, request in (("GetHubStatus", _request(HubName="Other")), ("GetServerStatus", None),
                              ("CreateHub", _request(HubName="New")), ("DeleteHub", _request(HubName="Other"))):
        assert call(hub_admin, function, request).get_int("error") == Err.NOT_ENOUGH_RIGHT, function
    hub_admin.close()


@pytest.mark.parametrize("bad", [
    struct.pack(">I", 4 * 1024 * 1024 + 1),               # over the admin frame limit
    struct.pack(">I", 16) + b"\x00\x00\x00\x01" + b"\xff" * 12,  # a PACK that does not parse
], ids=["oversized", "garbage"])
def test_a_bad_frame_closes_only_its_connection(vpnd, bad):
    bystander = admin_connection(vpnd.port, vpnd.password)
    victim = admin_connection(vpnd.port, vpnd.password)
    victim.sendall(bad)
    assert closed_by_peer(victim)
    victim.close()
    cut = admin_connection(vpnd.port, vpnd.password)
    cut.sendall(struct.pack(">I", 500) + b"\0" * 20)  # a truncated frame, then the client is gone
    cut.close()
    assert call(bystander, "Test", _request(IntValue=5)).get_int("IntValue") == 5
    assert "result" in vpnd.call("GetServerInfo")  # JSON-RPC is still served too
    bystander.close()


def test_a_call_may_arrive_in_pieces_and_an_idle_connection_stays(vpnd):
    sock = admin_connection(vpnd.port, vpnd.password)
    p = _request(function_name="Test", IntValue=9)
    body = p.encode()
    for byte in struct.pack(">I", len(body)) + body:
        sock.sendall(bytes([byte]))
    reply = Pack.decode(recv_exact(sock, struct.unpack(">I", recv_exact(sock, 4))[0]))
    assert reply.get_int("IntValue") == 9
    time.sleep(1.0)  # idle between calls: SoftEther keeps the connection, and so do we
    assert call(sock, "Test", _request(IntValue=3)).get_int("IntValue") == 3
    sock.close()
