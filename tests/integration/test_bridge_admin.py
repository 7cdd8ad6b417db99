"""Local bridge and session admin on a real vpnd over TLS (no namespaces, so
no device is ever created here: only a bridge to a NIC that does not exist,
which must stay configured, Online and not Active, and survive a restart).
Opening real devices is tests/netns/test_bridge_admin.py."""

from __future__ import annotations

import os

from node.dataplane.service import eth_supported
from node.softether.errors import Err
from tests.integration.test_vpnd_admin import _err, _ok


def test_bridge_to_a_missing_nic_stays_configured_online_and_inactive(vpnd):
    device = f"nodev{os.getpid() % 100000}"
    _ok(vpnd.call("CreateHub", {"HubName_str": "LAN", "Online_bool": True}))
    add = {"HubNameLB_str": "LAN", "DeviceName_str": device, "TapMode_bool": False}
    if not eth_supported():
        # same check as vpnd's (both run as this user): no raw sockets, no bridges
        assert _err(vpnd.call("AddLocalBridge", add)) == Err.LOCAL_BRIDGE_UNSUPPORTED
        return
    assert _ok(vpnd.call("AddLocalBridge", add)) == add
    assert _ok(vpnd.call("AddLocalBridge", add)) == add            # again: no change, as SoftEther
    assert _err(vpnd.call("AddLocalBridge", {**add, "HubNameLB_str": "Other"})) == Err.OBJECT_EXISTS
    row = {"DeviceName_str": device, "HubNameLB_str": "LAN", "Online_bool": True,
           "Active_bool": False, "TapMode_bool": False}
    assert _ok(vpnd.call("EnumLocalBridge")) == {"NumItem_u32": 1, "LocalBridgeList": [row]}
    # a hub administrator may not touch bridges
    _ok(vpnd.call("SetHub", {"HubName_str": "LAN", "Online_bool": True, "AdminPasswordPlainText_str": "hp"}))
    assert _err(vpnd.call("EnumLocalBridge", hub="LAN", password="hp")) == Err.NOT_ENOUGH_RIGHT

    _ok(vpnd.call("SetHubOnline", {"HubName_str": "LAN", "Online_bool": False}))
    assert _ok(vpnd.call("EnumLocalBridge"))["LocalBridgeList"][0]["Online_bool"] is False

    vpnd.stop()
    vpnd.start()
    rows = _ok(vpnd.call("EnumLocalBridge"))["LocalBridgeList"]
    assert rows == [{**row, "Online_bool": False}]
    _ok(vpnd.call("DeleteLocalBridge", {"HubNameLB_str": "lan", "DeviceName_str": device.upper()}))
    assert _err(vpnd.call("DeleteLocalBridge", add)) == Err.OBJECT_NOT_FOUND
    assert _ok(vpnd.call("EnumLocalBridge"))["NumItem_u32"] == 0
    assert "cannot open interface" in vpnd.log()


def test_sessions_and_tables_of_an_idle_hub(vpnd):
    _ok(vpnd.call("CreateHub", {"HubName_str": "Idle", "Online_bool": True}))
    assert _ok(vpnd.call("EnumSession", {"HubName_str": "idle"})) == {"HubName_str": "Idle", "SessionList": []}
    assert _ok(vpnd.call("EnumMacTable", {"HubName_str": "Idle"}))["MacTable"] == []
    assert _ok(vpnd.call("EnumIpTable", {"HubName_str": "Idle"}))["IpTable"] == []
    assert _err(vpnd.call("EnumSession", {"HubName_str": "nope"})) == Err.HUB_NOT_FOUND
    assert _err(vpnd.call("GetSessionStatus", {"HubName_str": "Idle", "Name_str": "SID-X-1"})) \
        == Err.OBJECT_NOT_FOUND
    assert _err(vpnd.call("DeleteSession", {"HubName_str": "Idle", "Name_str": "SID-X-1"})) \
        == Err.OBJECT_NOT_FOUND
    assert _err(vpnd.call("DeleteMacTable", {"HubName_str": "Idle", "Key_u32": 1})) == Err.OBJECT_NOT_FOUND
    hub = next(h for h in _ok(vpnd.call("EnumHub"))["HubList"] if h["HubName_str"] == "Idle")
    assert hub["IsTrafficFilled_bool"] is True and hub["NumSessions_u32"] == 0

