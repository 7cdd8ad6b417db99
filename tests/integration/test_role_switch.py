"""Cluster roles switched at run time on real vpnd processes (issue 8).

A controller and two members on loopback, set up with vpnctl as an operator
would. ClusterSettingController run again on the controller (new /WEIGHT,
/ONLY:yes, the same values again) restarts its role, and with it the bus on
the saved port; a member goes standalone and back; the controller goes
standalone and back. After every switch the test waits until the switch is
done (the controller's log says its role started once more) and then until
ClusterMemberList lists both members again: the new role starts with an empty
registry, so every member listed has rejoined it. Before the fix the members
never got past the CURVE handshake after the first controller-to-controller
switch (the new bus's ZAP handler was never polled; vpnbus/zap.py).

Each test builds its own cluster (function-scoped fixture) and stops every
process by PID, also when it fails. Waits poll with generous deadlines;
nothing about timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from node.softether.errors import Err
from tests.vpnd_proc import Vpnd
from tools.vpndrill.cluster import DrillError, wait_until

pytestmark = pytest.mark.timeout(300)
DEADLINE_S = 45.0
LIVENESS_S = 2.0
"""VPNCLUSTER_LIVENESS_S of every node: a member away is noticed in seconds."""
ROLE_STARTED = "cluster controller: bus "
"""The controller role's start line (node/cluster/controller_role.py)."""


def ok(node: Vpnd, *words: str, json_out: bool = False) -> str:
    done = node.vpnctl(*words, json_out=json_out)
    assert done.returncode == 0, f"vpnctl {' '.join(words)}: {done.stderr}{done.stdout}"
    return done.stdout


def wait_for(cond, what: str, node: Vpnd, timeout: float = DEADLINE_S):
    """Poll `cond()` until truthy; on timeout fail with the tail of `node`'s log."""
    try:
        return wait_until(cond, what, timeout, step_s=0.1)
    except DrillError as exc:
        raise AssertionError(f"{exc}\n--- {node.name} log tail ---\n{node.log_tail()}") from None


def listed_ports(ctl: Vpnd) -> set[int]:
    """Public ports of the members the controller lists now (EnumFarmMember:
    what ClusterMemberList shows); empty if it is not a running controller."""
    rows = ctl.call("EnumFarmMember").get("result", {}).get("FarmMemberList", [])
    ports = set()
    for row in rows:
        if row["Controller_bool"]:
            continue
        info = ctl.call("GetFarmInfo", {"Id_u32": row["Id_u32"]}).get("result")
        if info and info["Ports_u32"]:
            ports.add(info["Ports_u32"][0])
    return ports


def controller_row(ctl: Vpnd) -> dict:
    """GetFarmInfo of the controller's own row."""
    rows = ctl.call("EnumFarmMember")["result"]["FarmMemberList"]
    me = next(r for r in rows if r["Controller_bool"])
    return ctl.call("GetFarmInfo", {"Id_u32": me["Id_u32"]})["result"]


def assert_member_list(ctl: Vpnd, members: list[Vpnd]) -> None:
    """ClusterMemberList itself (the operator's view): the controller and exactly `members`."""
    rows = json.loads(ok(ctl, "ClusterMemberList", json_out=True))["FarmMemberList"]
    assert [r["Controller_bool"] for r in rows].count(True) == 1
    assert len(rows) == len(members) + 1, rows
    assert listed_ports(ctl) == {m.port for m in members}


def roles_started(ctl: Vpnd) -> int:
    return ctl.log().count(ROLE_STARTED)


def make_member(ctl: Vpnd, m: Vpnd) -> None:
    ok(m, "ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1", f"/PORTS:{m.port}",
       f"/PASSWORD:{ctl.password}")


def wait_listed(ctl: Vpnd, members: list[Vpnd], what: str) -> None:
    want = {m.port for m in members}
    wait_for(lambda: listed_ports(ctl) == want, f"{what}: {len(want)} member(s) listed", ctl)
    assert_member_list(ctl, members)


def switch_controller(ctl: Vpnd, members: list[Vpnd], *words: str) -> None:
    """ClusterSettingController `words` on the controller; wait until its role
    has started again and lists every member of `members`."""
    before = roles_started(ctl)
    ok(ctl, "ClusterSettingController", *words)
    wait_for(lambda: roles_started(ctl) > before, f"controller role restarted after {words}", ctl)
    wait_listed(ctl, members, f"after ClusterSettingController {' '.join(words)}")


@pytest.fixture
def cluster(tmp_path):
    """A controller and two members, all joined; every process stopped by PID afterwards."""
    nodes = [Vpnd(tmp_path / name) for name in ("ctl", "m1", "m2")]
    for n in nodes:
        n.env = {**os.environ, "VPNCLUSTER_LIVENESS_S": f"{LIVENESS_S:g}"}
    try:
        for n in nodes:
            n.start(wait=False)
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.wait_started(), nodes))
        ctl, members = nodes[0], nodes[1:]
        before = roles_started(ctl)
        ok(ctl, "ClusterSettingController")
        wait_for(lambda: roles_started(ctl) > before, "controller role started", ctl)
        for m in members:
            make_member(ctl, m)
        wait_listed(ctl, members, "initial join")
        yield ctl, members
    finally:
        errors = []
        for n in reversed(nodes):  # members first, then the controller
            try:
                n.stop()
            except (OSError, subprocess.TimeoutExpired) as exc:
                errors.append(f"{n.name}: {exc}")
        assert not errors, errors
        assert all(n.proc is None or n.proc.poll() is not None for n in nodes)


def test_controller_setting_changed_on_the_controller_keeps_its_members(cluster):
    ctl, members = cluster
    switch_controller(ctl, members, "/WEIGHT:150")
    assert controller_row(ctl)["Weight_u32"] == 150
    switch_controller(ctl, members, "/WEIGHT:150", "/ONLY:yes")
    assert ctl.call("GetFarmSetting")["result"]["ControllerOnly_bool"] is True
    switch_controller(ctl, members, "/WEIGHT:150", "/ONLY:yes")  # the same values again
    switch_controller(ctl, members, "/WEIGHT:150", "/ONLY:yes")
    switch_controller(ctl, members, "/WEIGHT:100", "/ONLY:no")
    assert controller_row(ctl)["Weight_u32"] == 100
    assert ctl.call("GetFarmSetting")["result"]["ControllerOnly_bool"] is False
    assert "Traceback" not in ctl.log()


def test_member_to_standalone_and_back_twice(cluster):
    ctl, members = cluster
    m, other = members
    for round_ in (1, 2):
        ok(m, "ClusterSettingStandalone")
        wait_for(lambda: m.call("GetFarmConnectionStatus").get("error", {}).get("code") == Err.NOT_FARM_MEMBER,
                 f"round {round_}: member is standalone", m)
        wait_listed(ctl, [other], f"round {round_}: former member out")
        make_member(ctl, m)
        wait_listed(ctl, members, f"round {round_}: member back")
    assert "Traceback" not in m.log() and "Traceback" not in ctl.log()


def test_controller_to_standalone_and_back_twice(cluster):
    ctl, members = cluster
    for round_ in (1, 2):
        ok(ctl, "ClusterSettingStandalone")
        wait_for(lambda: ctl.call("EnumFarmMember").get("error", {}).get("code") == Err.NOT_FARM_CONTROLLER,
                 f"round {round_}: controller is standalone", ctl)
        for m in members:
            wait_for(lambda: not m.call("GetFarmConnectionStatus").get("result", {}).get("Online_bool"),
                     f"round {round_}: {m.name} offline while there is no controller", m)
        switch_controller(ctl, members)
    # And a controller-to-controller change right after: the case of issue 8.
    switch_controller(ctl, members, "/WEIGHT:150")
    assert "Traceback" not in ctl.log()
