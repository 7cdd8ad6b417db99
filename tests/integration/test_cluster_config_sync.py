"""Configuration sync on a real cluster on loopback (vpnd processes, set up
with vpnctl): a member joining a controller with more configuration than
one bus frame carries (40 hubs x 200 users, ~2.5 MB) gets all of it in
chunks and is listed "in sync" at the controller's serial; one CreateUser
then reaches it as a delta (the member's log says which), and the member
list (EnumFarmMember, vpnctl ClusterMemberList) shows the serials."""

from __future__ import annotations

import json

import pytest

from node.state import model
from node.state.node_state import CONFIG_NAME, NodeState
from tests.vpnd_proc import Vpnd, wait_for
from tools.vpndrill.lab.bulk_config import add_hubs

pytestmark = pytest.mark.timeout(300)
HUBS, USERS = 40, 200


def member_row(ctl: Vpnd) -> dict:
    rows = ctl.call("EnumFarmMember").get("result", {}).get("FarmMemberList", [])
    return next((r for r in rows if not r["Controller_bool"]), {})


def in_sync(ctl: Vpnd) -> dict:
    row = member_row(ctl)
    ok = row.get("ConfigSync_str") == "in sync" and row["ConfigSerial_u64"] == row["ControllerConfigSerial_u64"]
    return row if ok else {}


def test_a_member_joining_a_large_configuration_syncs_in_chunks_then_gets_deltas(nodes):
    ctl = nodes("ctl")
    done = ctl.vpnctl("ClusterSettingController")
    assert done.returncode == 0, done.stderr
    ctl.stop()
    add_hubs(ctl.state_dir, HUBS, USERS, hub_type=model.HUB_DYNAMIC, note="n" * 150)
    ctl.start()

    member = nodes("m1")
    done = member.vpnctl("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1",
                         f"/PORTS:{member.port}", f"/PASSWORD:{ctl.password}")
    assert done.returncode == 0, done.stderr
    row = wait_for(lambda: in_sync(ctl), "the new member in sync")
    stored = NodeState.open(member.state_dir).config  # dynamic hubs run only where sessions are placed
    assert {h.name for h in stored.hubs} == {f"BULK{i}" for i in range(HUBS)}
    assert sum(len(h.users) for h in stored.hubs) == HUBS * USERS
    assert f"{HUBS} hubs)" in member.log()  # applied whole, once the last chunk came

    # One change: a delta, not the configuration again.
    serial = row["ControllerConfigSerial_u64"]
    full_sync_bytes = ctl.call("EnumFarmMember")["result"]["ConfigBytesSent_u64"]
    assert full_sync_bytes > 2 * 1024 * 1024  # more than a bus frame carries
    created = ctl.call("CreateUser", {"HubName_str": "BULK7", "Name_str": "newcomer", "AuthType_u32": 1,
                                      "Auth_Password_str": "pw-newcomer"})
    assert "result" in created, created
    row = wait_for(lambda: in_sync(ctl) if in_sync(ctl).get("ConfigSerial_u64", 0) > serial else {},
                   "the member in sync after CreateUser")
    assert row["ConfigSerial_u64"] == serial + 1
    assert f"(serial {serial + 1}, 1 hubs changed, 0 deleted)" in member.log()
    change_bytes = ctl.call("EnumFarmMember")["result"]["ConfigBytesSent_u64"] - full_sync_bytes
    assert 0 < change_bytes < 1024  # the new user, not the configuration
    users = NodeState.open(member.state_dir).config.find_hub("BULK7").users
    assert "newcomer" in {u.name for u in users} and len(users) == USERS + 1

    shown = ctl.vpnctl("ClusterMemberList")
    assert shown.returncode == 0 and f"{serial + 1} / {serial + 1}" in shown.stdout and "in sync" in shown.stdout
    info = json.loads(ctl.vpnctl("ClusterMemberInfoGet", str(row["Id_u32"]), json_out=True).stdout)
    assert info["ConfigSync_str"] == "in sync" and info["ConfigSerial_u64"] == serial + 1


def test_a_user_no_frame_can_carry_shows_on_the_member_list_and_the_rest_still_goes(nodes):
    """Issue 13 finding 1: a 1.1 MB note stopped every later push, silently.
    The API refuses such a note now (error 38), but a configuration saved by
    an older vpnd may hold one: its controller must still sync the rest."""
    ctl, member = nodes("ctl"), nodes("m1")
    assert ctl.vpnctl("ClusterSettingController").returncode == 0
    assert ctl.vpnctl("HubCreateStatic", "SYNC", "/PASSWORD:hubpw").returncode == 0
    done = member.vpnctl("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1",
                         f"/PORTS:{member.port}", f"/PASSWORD:{ctl.password}")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: in_sync(ctl), "the member in sync")
    refused = ctl.call("CreateUser", {"HubName_str": "SYNC", "Name_str": "bignote", "AuthType_u32": 1,
                                      "Auth_Password_str": "pw", "Note_utf": "n" * 1_100_000})
    assert refused["error"]["code"] == 38, refused
    created = ctl.call("CreateUser", {"HubName_str": "SYNC", "Name_str": "bignote", "AuthType_u32": 1,
                                      "Auth_Password_str": "pw"})
    assert "result" in created, created
    ctl.stop()
    path = ctl.state_dir / CONFIG_NAME
    saved = json.loads(path.read_text())
    [user] = [u for h in saved["hubs"] if h["name"] == "SYNC" for u in h["users"] if u["name"] == "bignote"]
    user["note"] = "n" * 1_100_000   # a change an older vpnd saved and its members never got
    saved["serial"] += 1
    path.write_text(json.dumps(saved))
    ctl.start()
    created = ctl.call("CreateUser", {"HubName_str": "SYNC", "Name_str": "after", "AuthType_u32": 1,
                                      "Auth_Password_str": "pw"})
    assert "result" in created, created
    row = wait_for(lambda: (r := member_row(ctl)) and "bignote" in r.get("ConfigSync_str", "") and
                   r["ConfigSerial_u64"] == r["ControllerConfigSerial_u64"] and r, "the undeliverable user listed")
    assert row["ConfigSync_str"].startswith("in sync: not sent to members: user 'bignote' of hub 'SYNC'")
    info = ctl.call("GetFarmInfo", {"Id_u32": row["Id_u32"]})["result"]
    assert "bignote" in info["ConfigSync_str"]
    assert "cannot be sent to cluster members: user 'bignote'" in ctl.log()
    users = {u.name for u in NodeState.open(member.state_dir).config.find_hub("SYNC").users}
    assert users == {"after"}  # the change after it still reached the member
    assert ctl.call("DeleteUser", {"HubName_str": "SYNC", "Name_str": "bignote"}).get("result") is not None
    wait_for(lambda: member_row(ctl).get("ConfigSync_str") == "in sync", "the problem gone with the user")
