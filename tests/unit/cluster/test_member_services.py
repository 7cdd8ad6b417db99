"""A server's answers to the controller's session and table requests
(node/cluster/member_services.py): rows from its running hubs, SoftEther's
errors as bus refusals, and replies that cross the bus codec intact."""

from __future__ import annotations

import asyncio

import pytest

from controller.messages import (
    Ack, DeleteIpTable, DeleteMacTable, DeleteSession, EnumIpTable, EnumMacTable, EnumSessions,
    GetSessionStatus, SessionDetail, SessionList, StatusPoll,
)
from node.cluster import member_services as ms
from node.dataplane.hubs import RunningHub
from node.softether.errors import Err
from node.state import model
from tests.unit.dataplane.fakes import BCAST, FakeSession, ipv4_frame, mac, make_server
from vpnbus.endpoint import RequestFailed
from vpnbus.envelope import Envelope, decode, encode

WALL, MONO = 1_800_000_000.0, 500.0


@pytest.fixture
def setup(tmp_path):
    server = make_server(tmp_path, hubs=[model.Hub("DEFAULT", hub_type=model.HUB_STATIC)])
    inst = RunningHub("DEFAULT", clock=lambda: MONO, wall_clock=lambda: WALL)
    server.hubs["default"] = inst
    alice, bob = FakeSession(inst, "alice"), FakeSession(inst, "bob")
    inst.add_session(alice)
    inst.add_session(bob)
    inst.hub.input(alice, [ipv4_frame(BCAST, mac(1), bytes((10, 1, 0, 1)), bytes((10, 1, 0, 2)))])
    return server, inst, alice, bob


def _over_the_bus(record):
    """The record as the peer decodes it."""
    return decode(encode(Envelope(message=record, id=1))).message


def test_enum_sessions_lists_the_running_hubs_sessions_and_bridges(setup):
    server, inst, alice, _ = setup
    inst.place_bridge("veth9", "veth9")
    reply = _over_the_bus(ms.serve(server, EnumSessions(hub="default")))
    assert isinstance(reply, SessionList)
    rows = {r.name: r for r in reply.sessions}
    assert set(rows) == {"SID-ALICE-1", "SID-BOB-2", "SID-LOCALBRIDGE-3"}
    a = rows["SID-ALICE-1"]
    assert (a.username, a.client_ip, a.client_hostname) == ("alice", "127.0.0.5", "client-host")
    assert (a.tcp_connections, a.max_tcp_connections, a.packet_count) == (2, 8, 1)
    assert a.packet_bytes == len(ipv4_frame(BCAST, mac(1), b"1234", b"1234"))
    assert a.unique_id == bytes(range(16)) and a.created_time == alice.created_time and not a.bridge
    assert rows["SID-LOCALBRIDGE-3"].bridge and rows["SID-LOCALBRIDGE-3"].username == "Local Bridge"


def test_a_hub_without_an_instance_here_has_nothing(setup):
    server = setup[0]
    assert ms.serve(server, EnumSessions(hub="other")) == SessionList(sessions=[])
    assert ms.serve(server, EnumMacTable(hub="other")).rows == []
    assert ms.serve(server, EnumIpTable(hub="other")).rows == []
    for request in (GetSessionStatus(hub="other", name="SID-ALICE-1"), DeleteSession(hub="other", name="x"),
                    DeleteMacTable(hub="other", key=1), DeleteIpTable(hub="other", key=1)):
        with pytest.raises(RequestFailed) as info:
            ms.serve(server, request)
        assert info.value.code == Err.OBJECT_NOT_FOUND


def test_get_session_status_by_name_case_insensitively(setup):
    server = setup[0]
    detail = _over_the_bus(ms.serve(server, GetSessionStatus(hub="DEFAULT", name="sid-alice-1")))
    assert isinstance(detail, SessionDetail)
    assert (detail.name, detail.connection_name, detail.client_port) == ("SID-ALICE-1", "CID-7", 40001)
    # the client's view: it sent what the server received
    assert (detail.sent_bytes, detail.received_bytes) == (3000, 1000)
    assert detail.traffic["Send.BroadcastCount"] == 1 and detail.session_key == bytes(range(20))
    with pytest.raises(RequestFailed) as info:
        ms.serve(server, GetSessionStatus(hub="DEFAULT", name="SID-CAROL-9"))
    assert info.value.code == Err.OBJECT_NOT_FOUND


def test_delete_session_closes_it_and_refuses_a_bridge(setup):
    server, inst, alice, bob = setup
    inst.place_bridge("veth9", "veth9")

    async def main():
        assert ms.serve(server, DeleteSession(hub="DEFAULT", name="SID-ALICE-1")) == Ack()
        for _ in range(10):
            await asyncio.sleep(0)
        assert alice.close_reasons == [ms.DISCONNECT_REASON] and bob.close_reasons == []
        with pytest.raises(RequestFailed) as info:
            ms.serve(server, DeleteSession(hub="DEFAULT", name="SID-LOCALBRIDGE-3"))
        assert info.value.code == Err.BRIDGE_CANT_DISCONNECT

    asyncio.run(main())
    assert "SID-ALICE-1" not in inst.sessions


def test_tables_with_keys_and_wall_clock_times_and_their_deletion(setup):
    server = setup[0]
    macs = _over_the_bus(ms.serve(server, EnumMacTable(hub="DEFAULT"))).rows
    assert [(m.session_name, m.mac, m.vlan_id) for m in macs] == [("SID-ALICE-1", mac(1), 0)]
    assert macs[0].created_time == WALL and macs[0].key > 0
    ips = _over_the_bus(ms.serve(server, EnumIpTable(hub="DEFAULT"))).rows
    assert [(i.session_name, i.ip, i.dhcp_allocated) for i in ips] == [("SID-ALICE-1", "10.1.0.1", False)]
    assert ms.serve(server, DeleteMacTable(hub="DEFAULT", key=macs[0].key)) == Ack()
    assert ms.serve(server, DeleteIpTable(hub="DEFAULT", key=ips[0].key)) == Ack()
    assert ms.serve(server, EnumMacTable(hub="DEFAULT")).rows == []
    assert ms.serve(server, EnumIpTable(hub="DEFAULT")).rows == []
    with pytest.raises(RequestFailed):
        ms.serve(server, DeleteMacTable(hub="DEFAULT", key=macs[0].key))


def test_other_messages_are_not_served_here(setup):
    assert ms.serve(setup[0], StatusPoll()) is None
