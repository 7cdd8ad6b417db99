"""A real cluster on loopback: one controller and three member vpnd processes,
set up with vpnctl as an operator would (ClusterSettingController,
ClusterSettingMember, ClusterMemberList, HubCreateStatic, HubList).

Members are told apart by their public port (each uses its own listener
port), read with GetFarmInfo; every process has the same host name here.
Waits poll the member list with generous deadlines; the times measured are
printed, never asserted (bench/detect.py reports them).

Every test passes alone and in any order: the tests share one cluster but
each starts from a healthy one (`SharedCluster` rebuilds it otherwise), makes
the hubs it looks for itself, and the mode-change test builds its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from controller.points import points
from node.softether.errors import Err
from tests.cluster_fakes import discover, hostile_peers
from tests.vpnd_proc import Vpnd

pytestmark = pytest.mark.timeout(240)
DEADLINE_S = 20.0


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def wait_for(cond, what: str, timeout: float = DEADLINE_S, step: float = 0.05):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = cond()
        if value:
            return value, time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout} s")


def listed(ctl: Vpnd) -> dict[int, dict]:
    """Public port → member row (with GetFarmInfo's Weight/Ports), controller excluded."""
    out = {}
    for row in ctl.call("EnumFarmMember")["result"]["FarmMemberList"]:
        if row["Controller_bool"]:
            continue
        info = ctl.call("GetFarmInfo", {"Id_u32": row["Id_u32"]}).get("result")
        if info:
            out[info["Ports_u32"][0]] = {**row, **info}
    return out


def hub_names(node: Vpnd) -> set[str]:
    return {h["HubName_str"] for h in node.call("EnumHub")["result"]["HubList"]}


def connection(node: Vpnd) -> dict:
    return node.call("GetFarmConnectionStatus")["result"]


def make_member(ctl: Vpnd, m: Vpnd, weight: int = 100) -> None:
    words = ["ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1", f"/PORTS:{m.port}",
             f"/PASSWORD:{ctl.password}"]
    if weight != 100:
        words.append(f"/WEIGHT:{weight}")
    ok(m.vpnctl(*words))


def start_all(nodes: list[Vpnd]) -> None:
    for n in nodes:
        n.start(wait=False)
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda n: n.wait_ready(), nodes))


def build_cluster(base, weights: tuple[int, ...]) -> tuple[Vpnd, list[Vpnd]]:
    """A controller and one member per weight, all listed; stopped again if
    the build fails."""
    ctl = Vpnd(base / "ctl")
    members = [Vpnd(base / f"m{i}") for i in range(len(weights))]
    try:
        start_all([ctl, *members])
        ok(ctl.vpnctl("ClusterSettingController"))
        wait_for(lambda: discover(ctl.port).get("bus_port"), "controller bus up")
        with ThreadPoolExecutor(len(members)) as pool:
            list(pool.map(lambda mw: make_member(ctl, *mw), zip(members, weights)))
        wait_for(lambda: len(listed(ctl)) == len(members), "every member joined")
    except BaseException:
        stop_cluster(ctl, members)
        raise
    return ctl, members


def stop_cluster(ctl: Vpnd, members: list[Vpnd]) -> None:
    for n in [*members, ctl]:
        n.stop()  # SIGCONT first: a stopped process cannot handle SIGTERM


def healthy(ctl: Vpnd, members: list[Vpnd]) -> bool:
    """Every process running, the controller still one, every member listed
    and online: the state each test of the shared cluster starts from."""
    try:
        if any(n.proc is None or n.proc.poll() is not None for n in [ctl, *members]):
            return False
        if ctl.call("GetFarmSetting")["result"]["ServerType_u32"] != 1:
            return False
        wait_for(lambda: set(listed(ctl)) == {m.port for m in members}
                 and all(connection(m)["Online_bool"] for m in members), "cluster healthy", timeout=10.0)
        return True
    except (AssertionError, KeyError, OSError):
        return False


WEIGHTS = (100, 100, 200)


class SharedCluster:
    """One controller and three members shared by the tests of this module
    (building one takes ~4 s). Each test gets it in the same state: if an
    earlier test left it otherwise (a member killed and not restarted, a
    failed assertion half-way through a fault), it is rebuilt first. A test
    that changes what the others rely on for good (the cluster mode) builds
    its own instead."""

    def __init__(self, base) -> None:
        self.base = base
        self.built = 0
        self.nodes: tuple[Vpnd, list[Vpnd]] | None = None

    def get(self) -> tuple[Vpnd, list[Vpnd]]:
        if self.nodes is not None and not healthy(*self.nodes):
            self.close()
        if self.nodes is None:
            self.built += 1
            self.nodes = build_cluster(self.base / f"cluster{self.built}", WEIGHTS)
        return self.nodes

    def close(self) -> None:
        if self.nodes is not None:
            stop_cluster(*self.nodes)
            self.nodes = None


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    shared = SharedCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster.get()


@pytest.fixture
def own_cluster(tmp_path):
    """A controller and one member for this test alone."""
    ctl, members = build_cluster(tmp_path, (100,))
    try:
        yield ctl, members
    finally:
        stop_cluster(ctl, members)


def test_members_join_and_show_points(cluster):
    ctl, members = cluster
    doc = json.loads(ok(ctl.vpnctl("ClusterMemberList", json_out=True)))
    rows = doc["FarmMemberList"]
    assert [r["Controller_bool"] for r in rows].count(True) == 1 and len(rows) == 4
    table = ok(ctl.vpnctl("ClusterMemberList"))
    assert "Controller" in table and "Member" in table
    by_port = listed(ctl)
    assert set(by_port) == {m.port for m in members}
    for m, weight in zip(members, (100, 100, 200)):
        row = by_port[m.port]
        assert row["Weight_u32"] == weight
        assert row["Point_u32"] == points(row["NumSessions_u32"], weight)
    # At equal load the weight-200 member's figure is the formula's (idle members all have
    # 100000: the weight's effect on points is checked with sessions in test_member_role).
    assert by_port[members[2].port]["Point_u32"] == points(by_port[members[0].port]["NumSessions_u32"], 200)
    assert all(connection(m)["Online_bool"] for m in members)


def test_static_hub_on_every_member_and_member_refuses_hub_creation(cluster):
    ctl, members = cluster
    ok(ctl.vpnctl("HubCreateStatic", "STATIC1", "/PASSWORD:hubpw"))
    ok(ctl.vpnctl("UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice", "/NOTE:x", hub="STATIC1"))
    for m in members:
        wait_for(lambda: "STATIC1" in ok(m.vpnctl("HubList")), "static hub in a member's HubList", step=0.2)
        wait_for(lambda: "alice" in ok(m.vpnctl("UserList", hub="STATIC1")), "user pushed", step=0.2)
    refused = members[0].vpnctl("HubCreate", "MINE", "/PASSWORD:x")
    assert refused.returncode != 0
    err = members[0].call("CreateHub", {"HubName_str": "MINE", "HubType_u32": 1, "Online_bool": True})["error"]
    assert err["code"] == Err.NOT_FARM_CONTROLLER


def evictions_logged(ctl: Vpnd) -> list[str]:
    return [line for line in ctl.log().splitlines() if "out of load balancing" in line]


def test_kill9_out_then_restart_rejoins_with_hubs_created_meanwhile(cluster):
    ctl, members = cluster
    m = members[0]
    before = len(evictions_logged(ctl))
    m.kill()
    _, took = wait_for(lambda: m.port not in listed(ctl), "killed member out of the list")
    print(f"kill -9: out of the member list after {took:.2f} s")
    # Out because its connection closed, not after the liveness timeout.
    evicted = wait_for(lambda: evictions_logged(ctl)[before:], "the eviction logged")[0]
    assert len(evicted) == 1 and "closed its connection" in evicted[0], evicted
    assert len(listed(ctl)) == 2
    ok(ctl.vpnctl("HubCreateStatic", "LATE1", "/PASSWORD:hubpw"))
    m.start()
    _, took = wait_for(lambda: m.port in listed(ctl), "restarted member back in the list")
    print(f"restart: back in the list after {took:.2f} s")
    wait_for(lambda: "LATE1" in hub_names(m), "hub created while down arrives on rejoin")
    status = connection(m)
    assert status["Online_bool"] and status["NumConnected_u32"] >= 1


def test_sigstop_out_sigcont_back(cluster):
    ctl, members = cluster
    m = members[1]
    wait_for(lambda: connection(m)["Online_bool"], "member online")
    before = connection(m)["NumConnected_u32"]
    logged = len(evictions_logged(ctl))
    os.kill(m.proc.pid, signal.SIGSTOP)
    try:
        _, took = wait_for(lambda: m.port not in listed(ctl), "stopped member out of the list")
        print(f"SIGSTOP: out of the member list after {took:.2f} s")
        # A frozen member's connection stays open: out by its silence.
        evicted = wait_for(lambda: evictions_logged(ctl)[logged:], "the eviction logged")[0]
        assert len(evicted) == 1 and "silent for" in evicted[0], evicted
    finally:
        os.kill(m.proc.pid, signal.SIGCONT)
    _, took = wait_for(lambda: m.port in listed(ctl), "continued member back in the list")
    print(f"SIGCONT: back in the list after {took:.2f} s")
    wait_for(lambda: connection(m)["NumConnected_u32"] == before + 1, "the rejoin is counted once")
    assert connection(m)["Online_bool"]


def test_hostile_bus_traffic_leaves_cluster_undisturbed(cluster):
    ctl, members = cluster
    wait_for(lambda: len(listed(ctl)) == 3, "all members listed")
    before = {m.port: connection(m)["NumConnected_u32"] for m in members}
    info = discover(ctl.port)
    asyncio.run(hostile_peers(info["bus_port"], info["controller_key"]))
    # the bus still carries the controller's work to every member: a hub
    # created after the junk was sent reaches each of them
    ok(ctl.vpnctl("HubCreateStatic", "AFTERJUNK", "/PASSWORD:hubpw"))
    for m in members:
        wait_for(lambda: "AFTERJUNK" in hub_names(m), "a hub created after the junk reaches every member")
    assert set(listed(ctl)) == {m.port for m in members}
    for m in members:
        status = connection(m)
        assert status["Online_bool"] and status["NumConnected_u32"] == before[m.port]
    assert "Traceback" not in ctl.log()


def test_controller_restart_members_rejoin(cluster):
    ctl, members = cluster
    wait_for(lambda: len(listed(ctl)) == 3, "all members listed")
    ctl.stop()
    ctl.start()
    _, took = wait_for(lambda: len(listed(ctl)) == 3, "members rejoined the restarted controller")
    print(f"controller restart: all members back after {took:.2f} s")
    assert all(connection(m)["Online_bool"] for m in members)


def test_mode_changes_at_run_time_with_backups(own_cluster):
    ctl, (m,) = own_cluster
    ok(ctl.vpnctl("HubCreateStatic", "MODE1", "/PASSWORD:hubpw"))
    wait_for(lambda: "MODE1" in hub_names(m), "static hub on the member")
    ok(m.vpnctl("ClusterSettingStandalone"))
    wait_for(lambda: m.call("GetFarmConnectionStatus").get("error", {}).get("code") == Err.NOT_FARM_MEMBER,
             "member is standalone")
    wait_for(lambda: not hub_names(m), "the controller's hubs left the former member")
    assert any(p.name.endswith("mode-change") for p in (m.state_dir / "backups").iterdir())
    wait_for(lambda: m.port not in listed(ctl), "former member out of the list")
    ok(ctl.vpnctl("ClusterSettingStandalone"))
    assert "result" in wait_for(lambda: ctl.call("GetServerInfo"), "controller answers")[0]
    assert ctl.call("EnumFarmMember")["error"]["code"] == Err.NOT_FARM_CONTROLLER
    types = {h["HubName_str"]: h["HubType_u32"] for h in ctl.call("EnumHub")["result"]["HubList"]}
    assert types == {"MODE1": 0}
    assert any(p.name.endswith("mode-change") for p in (ctl.state_dir / "backups").iterdir())
    assert ok(ctl.vpnctl("ClusterSettingGet")).count("Standalone") >= 1
