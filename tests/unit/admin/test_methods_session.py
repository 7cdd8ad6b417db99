"""EnumSession, GetSessionStatus, DeleteSession, EnumMacTable, EnumIpTable,
DeleteMacTable, DeleteIpTable against hub instances holding test-double
sessions: SoftEther's field names, wall-clock times, errors and scope."""

from __future__ import annotations

import asyncio
import base64

import pytest
from node.admin.jsonrpc import RpcError
from node.admin.jsonvalue import parse_dt
from node.dataplane.hubs import RunningHub
from node.softether.errors import Err
from node.state import model
from tests.unit.admin.admin_call import acall, call, error_of
from tests.unit.dataplane.fakes import BCAST, FakeSession, ipv4_frame, mac, make_server

WALL, MONO = 1_800_000_000.0, 500.0


@pytest.fixture
def setup(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT"), model.Hub("Off", online=False)])
    inst = RunningHub("DEFAULT", clock=lambda: MONO, wall_clock=lambda: WALL)
    server.hubs["default"] = inst
    alice, bob = FakeSession(inst, "alice"), FakeSession(inst, "bob", client_ip="::1")
    inst.add_session(alice)
    inst.add_session(bob)
    inst.hub.input(alice, [ipv4_frame(BCAST, mac(1), bytes((10, 1, 0, 1)), bytes((10, 1, 0, 2)))])
    return server, inst, alice, bob




def test_enum_session_rows(setup):
    server, inst, alice, bob = setup
    res = call(server, "EnumSession", {"HubName_str": "default"})
    assert res["HubName_str"] == "DEFAULT"
    rows = {r["Name_str"]: r for r in res["SessionList"]}
    a = rows["SID-ALICE-1"]
    assert a["Username_str"] == "alice" and a["ClientIP_ip"] == "127.0.0.5" and a["Ip_ip"] == "127.0.0.5"
    assert (a["MaxNumTcp_u32"], a["CurrentNumTcp_u32"]) == (8, 2)
    assert a["PacketNum_u64"] == 1 and a["PacketSize_u64"] == len(ipv4_frame(BCAST, mac(1), b"1234", b"1234"))
    assert a["Hostname_str"] == "client-host" and a["RemoteSession_bool"] is False
    assert base64.b64decode(a["UniqueId_bin"]) == bytes(range(16))
    assert abs(parse_dt(a["CreatedTime_dt"]) - alice.created_time) < 0.01
    assert rows["SID-BOB-2"]["ClientIP_ip"] == "::1" and rows["SID-BOB-2"]["Ip_ip"] == "0.0.0.0"


def test_offline_hub_has_no_sessions_and_unknown_hub_is_an_error(setup):
    server = setup[0]
    assert call(server, "EnumSession", {"HubName_str": "off"})["SessionList"] == []
    assert call(server, "EnumMacTable", {"HubName_str": "off"})["MacTable"] == []
    assert error_of(server, "EnumSession", {"HubName_str": "nope"}) == Err.HUB_NOT_FOUND


def test_get_session_status(setup):
    server, inst, alice, _ = setup
    res = call(server, "GetSessionStatus", {"HubName_str": "DEFAULT", "Name_str": "sid-alice-1"})
    assert res["Name_str"] == "SID-ALICE-1" and res["Username_str"] == "alice"
    assert res["SessionName_str"] == "SID-ALICE-1" and res["ConnectionName_str"] == "CID-7"
    assert res["SessionStatus_ClientIp_ip"] == "127.0.0.5" and res["ClientPort_u32"] == 40001
    assert base64.b64decode(res["SessionKey_bin"]) == bytes(range(20))
    # the client's view: it sent what the server received
    assert (res["TotalSendSize_u64"], res["TotalRecvSize_u64"]) == (3000, 1000)
    # alice's broadcast went into the hub: the client's view counts it as sent
    assert res["Send.BroadcastCount_u64"] == 1 and res["Recv.BroadcastCount_u64"] == 0
    assert res["UseEncrypt_bool"] is True and res["ClientProductBuild_u32"] == 9674
    assert res["NumTcpConnections_u32"] == 2 and res["MaxTcpConnections_u32"] == 8
    assert error_of(server, "GetSessionStatus", {"HubName_str": "DEFAULT", "Name_str": "x"}) \
        == Err.OBJECT_NOT_FOUND
    assert error_of(server, "GetSessionStatus", {"HubName_str": "DEFAULT"}) == Err.INVALID_PARAMETER


def test_delete_session_closes_it_in_a_task(setup):
    server, inst, alice, _ = setup

    async def main():
        res = await acall(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-ALICE-1"})
        assert res == {"HubName_str": "DEFAULT", "Name_str": "SID-ALICE-1"}
        for _ in range(10):
            await asyncio.sleep(0)
        assert alice.close_reasons == ["disconnected by the administrator"]
        assert "SID-ALICE-1" not in inst.sessions
        with pytest.raises(RpcError) as info:
            await acall(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "SID-ALICE-1"})
        assert info.value.code == Err.OBJECT_NOT_FOUND

    asyncio.run(main())


def test_mac_and_ip_tables_with_wall_clock_times_and_deletion(setup):
    server, inst, _, _ = setup
    macs = call(server, "EnumMacTable", {"HubName_str": "DEFAULT"})["MacTable"]
    assert len(macs) == 1
    row = macs[0]
    assert row["SessionName_str"] == "SID-ALICE-1" and base64.b64decode(row["MacAddress_bin"]) == mac(1)
    assert parse_dt(row["CreatedTime_dt"]) == pytest.approx(WALL) and row["VlanId_u32"] == 0
    ips = call(server, "EnumIpTable", {"HubName_str": "DEFAULT"})["IpTable"]
    assert [(r["IpAddress_ip"], r["Ip_ip"], r["DhcpAllocated_bool"]) for r in ips] == [("10.1.0.1", "10.1.0.1", False)]

    assert error_of(server, "DeleteMacTable", {"HubName_str": "DEFAULT", "Key_u32": 999}) == Err.OBJECT_NOT_FOUND
    call(server, "DeleteMacTable", {"HubName_str": "DEFAULT", "Key_u32": row["Key_u32"]})
    assert call(server, "EnumMacTable", {"HubName_str": "DEFAULT"})["MacTable"] == []
    call(server, "DeleteIpTable", {"HubName_str": "DEFAULT", "Key_u32": ips[0]["Key_u32"]})
    assert inst.ip_table_size() == 0


def test_hub_admin_scope(setup):
    server = setup[0]
    assert call(server, "EnumSession", {"HubName_str": "DEFAULT"}, hub_admin_of="default")["SessionList"]
    assert error_of(server, "EnumMacTable", {"HubName_str": "DEFAULT"}, hub_admin_of="off") \
        == Err.NOT_ENOUGH_RIGHT


def test_local_bridges_are_listed_as_sessions_and_cannot_be_disconnected(setup):
    server, inst, _, _ = setup
    inst.place_bridge("veth9", "veth9")          # placed, device not open: still a session
    rows = {r["Name_str"]: r for r in call(server, "EnumSession", {"HubName_str": "DEFAULT"})["SessionList"]}
    assert rows["SID-LOCALBRIDGE-3"]["BridgeMode_bool"] is True
    assert rows["SID-LOCALBRIDGE-3"]["Username_str"] == "Local Bridge"
    assert rows["SID-LOCALBRIDGE-3"]["Client_BridgeMode_bool"] is True
    assert error_of(server, "DeleteSession", {"HubName_str": "DEFAULT", "Name_str": "sid-localbridge-3"}) \
        == Err.BRIDGE_CANT_DISCONNECT
    status = call(server, "GetSessionStatus", {"HubName_str": "DEFAULT", "Name_str": "SID-LOCALBRIDGE-3"})
    assert status["IsBridgeMode_bool"] is True and status["Username_str"] == "Local Bridge"
    assert status["RealUsername_str"] == "" and len(base64.b64decode(status["SessionKey_bin"])) == 20
