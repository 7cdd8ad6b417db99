"""The member's side of a real cluster on loopback: vpnd processes set up with
vpnctl as an operator would (ClusterSettingController, ClusterSettingMember,
ClusterConnectionStatusGet, ClusterSettingStandalone).

Covered: a member joins (Online, NumConnected 1); the controller restarts
and the member rejoins (NumConnected 2); the controller's key changes and
the member refuses it with ERR_CERT_NOT_TRUSTED until ClusterSettingMember
is run again; a wrong password keeps the member offline with
ERR_ACCESS_DENIED, retrying slowly, with the refusal in the controller's
log; a member turned standalone at run time leaves; a frozen controller
(SIGSTOP) takes the member offline without tearing down its hubs, and the
member rejoins once the controller runs again. Waits poll with
generous deadlines; no timing is asserted beyond the attempt-rate bound.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from node.softether.errors import Err
from tests.vpnd_proc import Vpnd, wait_for

pytestmark = pytest.mark.timeout(300)
RETRY_INTERVAL_S = 3.0


class Cli:
    """vpnctl against one vpnd, as its operator runs it."""

    def __init__(self, node: Vpnd) -> None:
        self.node = node

    def run(self, *words: str, json_out: bool = False) -> subprocess.CompletedProcess:
        return self.node.vpnctl(*words, json_out=json_out)

    def ok(self, *words: str, json_out: bool = False) -> str:
        done = self.run(*words, json_out=json_out)
        assert done.returncode == 0, f"vpnctl {' '.join(words)}: {done.stderr}{done.stdout}"
        return done.stdout

    def member_of(self, ctl: Vpnd, password: str) -> None:
        self.ok("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1",
                f"/PORTS:{self.node.port}", f"/PASSWORD:{password}")

    def connection(self) -> dict:
        return json.loads(self.ok("ClusterConnectionStatusGet", json_out=True))


def status(node: Vpnd) -> dict:
    """GetFarmConnectionStatus straight over JSON-RPC (cheap enough to poll)."""
    return node.call("GetFarmConnectionStatus").get("result", {})


def cluster_of_two(nodes, password: str | None = None) -> tuple[Vpnd, Vpnd, Cli]:
    """A controller and a member set up with vpnctl (`password`: the one the
    member is given; default the controller's real one). Returns (ctl, member, member's Cli)."""
    ctl, member = nodes("ctl"), nodes("m1")
    Cli(ctl).ok("ClusterSettingController")
    cli = Cli(member)
    cli.member_of(ctl, ctl.password if password is None else password)
    return ctl, member, cli


def test_join_restart_key_change_and_standalone(nodes):
    ctl, member, cli = cluster_of_two(nodes)
    wait_for(lambda: status(member).get("Online_bool"), "member online")
    shown = cli.connection()
    assert shown["Online_bool"] is True and shown["NumConnected_u32"] == 1
    assert shown["LastError_u32"] == 0
    assert (shown["Ip_ip"], shown["Port_u32"]) == ("127.0.0.1", ctl.port)
    assert "Online" in cli.ok("ClusterConnectionStatusGet")

    # Controller restarted (same keys): the member rejoins.
    ctl.stop()
    ctl.start()
    wait_for(lambda: status(member).get("NumConnected_u32") == 2 and status(member)["Online_bool"],
             "member rejoined after the controller restart")

    # Controller key changed: refused, never connected, until re-trusted.
    ctl.stop()
    for path in (ctl.state_dir / "bus").glob("node.*"):
        path.unlink()
    ctl.start()
    wait_for(lambda: status(member).get("LastError_u32") == Err.CERT_NOT_TRUSTED,
             "member refuses the changed controller key")
    assert not status(member)["Online_bool"]
    joins, failed = ctl.log().count("joined as id"), status(member)["NumFailed_u32"]
    wait_for(lambda: status(member)["NumFailed_u32"] > failed, "another refused attempt")
    assert ctl.log().count("joined as id") == joins   # the new key was never joined
    assert status(member)["LastError_u32"] == Err.CERT_NOT_TRUSTED
    assert "controller key changed (pinned" in member.log()
    assert "ClusterSettingMember again" in member.log()
    cli.member_of(ctl, ctl.password)
    wait_for(lambda: status(member).get("Online_bool"), "member joined after ClusterSettingMember")

    # Member → standalone at run time: it leaves; the status is member-only.
    cli.ok("ClusterSettingStandalone")
    wait_for(lambda: member.call("GetFarmConnectionStatus").get("error", {}).get("code")
             == Err.NOT_FARM_MEMBER, "member is standalone")
    assert "left member mode" in member.log()
    wait_for(lambda: "leaves the cluster" in ctl.log(), "controller saw the member leave")


def test_wrong_password_stays_offline_and_retries_slowly(nodes):
    ctl, member, cli = cluster_of_two(nodes, password="not-the-controller-password")
    wait_for(lambda: status(member).get("NumFailed_u32", 0) >= 1, "a failed join")
    window_began = time.monotonic()
    first = status(member)
    assert first["Online_bool"] is False
    assert first["LastError_u32"] == Err.ACCESS_DENIED
    # it tries again by itself (a condition, not a fixed wait) ...
    wait_for(lambda: status(member).get("NumFailed_u32", 0) > first["NumFailed_u32"], "another failed try")
    later = cli.connection()
    window_s = time.monotonic() - window_began
    assert later["Online_bool"] is False and later["LastError_u32"] == Err.ACCESS_DENIED
    assert later["NumConnected_u32"] == 0
    # ... slowly: no storm (a slow machine only widens the window, never the bound)
    tries = later["NumTry_u32"] - first["NumTry_u32"]
    assert 1 <= tries <= window_s / RETRY_INTERVAL_S + 1
    assert later["NumFailed_u32"] > first["NumFailed_u32"]
    assert "join refused" in ctl.log()
    assert "wrong controller password" in member.log()
    # one line per state change, not one per retry
    assert member.log().count("wrong controller password") == 1


def test_controller_frozen_member_keeps_its_hubs_and_rejoins(nodes):
    ctl, member, cli = cluster_of_two(nodes)
    wait_for(lambda: status(member).get("Online_bool"), "member online")
    Cli(ctl).ok("HubCreateStatic", "KEEP1", "/PASSWORD:hubpw")
    wait_for(lambda: "KEEP1" in cli.ok("HubList"), "pushed static hub in the member's HubList")

    os.kill(ctl.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not status(member).get("Online_bool"), "member offline while the controller is frozen")
        assert status(member)["LastError_u32"] in (Err.DISCONNECTED, Err.CONNECT_TO_FARM_CONTROLLER)
        # decision 10: nothing is torn down on the member while the controller is away
        hubs = {h["HubName_str"]: h for h in member.call("EnumHub")["result"]["HubList"]}
        assert hubs["KEEP1"]["Online_bool"] is True
    finally:
        os.kill(ctl.proc.pid, signal.SIGCONT)
    wait_for(lambda: status(member).get("NumConnected_u32") == 2 and status(member)["Online_bool"],
             "member rejoined the thawed controller")
    assert "KEEP1" in cli.ok("HubList")
