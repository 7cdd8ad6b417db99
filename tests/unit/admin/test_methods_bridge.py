"""AddLocalBridge, DeleteLocalBridge, EnumLocalBridge: persisted in the
config, SoftEther's fields and errors, server administrator only. (Opening
devices is covered by tests/netns/test_bridge_admin.py.)"""

from __future__ import annotations

import pytest
from node.softether.errors import Err
from node.state import model
from node.state.node_state import NodeState
from tests.unit.admin.admin_call import call, error_of
from tests.unit.dataplane.fakes import make_server


@pytest.fixture
def server(tmp_path, monkeypatch):
    import node.admin.methods_bridge as methods
    monkeypatch.setattr(methods, "eth_supported", lambda: True)
    return make_server(tmp_path, hubs=[model.Hub("DEFAULT")])




def test_add_enum_delete_round_trip_is_durable(server, tmp_path):
    res = call(server, "AddLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": "vpn1",
                                          "TapMode_bool": True})
    assert res == {"DeviceName_str": "vpn1", "HubNameLB_str": "DEFAULT", "TapMode_bool": True}
    call(server, "AddLocalBridge", {"HubNameLB_str": "Other", "DeviceName_str": "eth9"})
    assert NodeState.open(tmp_path).config.bridges == [model.Bridge("DEFAULT", "vpn1", True),
                                                       model.Bridge("Other", "eth9", False)]
    listing = call(server, "EnumLocalBridge", {})
    assert listing["NumItem_u32"] == 2
    # no data plane runs in this test: nothing is online
    assert listing["LocalBridgeList"][0] == {"DeviceName_str": "vpn1", "HubNameLB_str": "DEFAULT",
                                             "Online_bool": False, "Active_bool": False,
                                             "TapMode_bool": True}
    res = call(server, "DeleteLocalBridge", {"HubNameLB_str": "default", "DeviceName_str": "VPN1"})
    assert res["DeviceName_str"] == "vpn1" and res["TapMode_bool"] is True
    assert [b.device for b in NodeState.open(tmp_path).config.bridges] == ["eth9"]


def test_delete_prefers_the_exact_device_name(server, tmp_path):
    for dev in ("eth0", "ETH0"):    # two NICs on Linux: names are case-sensitive
        call(server, "AddLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": dev})
    call(server, "DeleteLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": "ETH0"})
    assert [b.device for b in NodeState.open(tmp_path).config.bridges] == ["eth0"]
    call(server, "DeleteLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": "Eth0"})
    assert NodeState.open(tmp_path).config.bridges == []


def test_errors(server):
    add = {"HubNameLB_str": "DEFAULT", "DeviceName_str": "vpn1", "TapMode_bool": True}
    call(server, "AddLocalBridge", add)
    serial = server.state.config.serial
    assert call(server, "AddLocalBridge", {**add, "HubNameLB_str": "default"})["TapMode_bool"] is True
    assert server.state.config.serial == serial and len(server.state.config.bridges) == 1
    # the same TAP device for another hub: one device, one bridge
    assert error_of(server, "AddLocalBridge", {**add, "HubNameLB_str": "X", "DeviceName_str": "VPN1"}) \
        == Err.OBJECT_EXISTS
    assert error_of(server, "AddLocalBridge", {"HubNameLB_str": "DEFAULT"}) == Err.INVALID_PARAMETER
    assert error_of(server, "AddLocalBridge", {**add, "DeviceName_str": "much-too-long"}) == Err.INVALID_PARAMETER
    assert error_of(server, "AddLocalBridge", {**add, "TapMode_bool": False, "DeviceName_str": "a/b"}) \
        == Err.INVALID_PARAMETER
    assert error_of(server, "DeleteLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": "nope"}) \
        == Err.OBJECT_NOT_FOUND
    assert error_of(server, "EnumLocalBridge", {}, hub_admin_of="DEFAULT") == Err.NOT_ENOUGH_RIGHT
    assert error_of(server, "AddLocalBridge", add, hub_admin_of="DEFAULT") == Err.NOT_ENOUGH_RIGHT


def test_unsupported_without_raw_sockets(server, monkeypatch):
    import node.admin.methods_bridge as methods
    monkeypatch.setattr(methods, "eth_supported", lambda: False)
    assert error_of(server, "EnumLocalBridge", {}) == Err.LOCAL_BRIDGE_UNSUPPORTED
    assert error_of(server, "AddLocalBridge", {"HubNameLB_str": "DEFAULT", "DeviceName_str": "e0"}) \
        == Err.LOCAL_BRIDGE_UNSUPPORTED
