"""Points with sessions, read from a real SoftEther 5.01 cluster and from ours.

The same scenario runs on both (tools/vpndrill/lab/clusters.py): a
controller with "controller functions only" and two members of weights 100
and 300, then SESSIONS userspace sessions of ours connected through the
controller (redirected to the members). Each member's Point_u32 in the
controller's EnumFarmMember, once the member has reported its sessions, must
be what controller/points.py computes for the member's own session count
(EnumSession on the member) and its weight. On SoftEther this checks our
formula against the product it copies (weight, the 100,000 session cap,
the truncation); on ours it checks the whole path from the member's report
to the controller's list, with sessions, where idle members would show
100,000 whatever the weights. Members report on their own schedule
(SoftEther's took up to ~8 s here), so the test waits for the figures with a
generous deadline rather than reading them once.

With SoftEther available, the same test also compares the field sets of the
cluster's admin answers (member list, member info, farm settings and status,
session lists on the controller and a member) read on both clusters while
the sessions are up; documented differences are in CLUSTER_FIELD_DIFFERENCES.
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from controller.points import points
from tests.oracle import NO_DIFFERENCE, Difference, field_set, unexpected
from tests.softether_lab import require_softether
from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy
from tools.vpnctl.client import AdminError
from tools.vpndrill.lab.clusters import BenchCluster, OurCluster, RealCluster
from tools.vpndrill.lab.softether import SoftEtherLab

pytestmark = pytest.mark.timeout(180)

WEIGHTS = [100, 300]
HUB, USER, PASSWORD = "PTS", "pointer", "pw-points"
SESSIONS = 7
REPORT_DEADLINE_S = 60.0
RETRY = RetryPolicy(max_retries=10, base_s=0.2, cap_s=1.0)


@contextlib.contextmanager
def cluster_of(kind: str, base: Path):
    if kind == "softether":
        require_softether()
        with SoftEtherLab(base / "selab") as lab:
            yield RealCluster(lab, WEIGHTS, HUB, {USER: PASSWORD})
    else:
        with OurCluster(base / "ours", WEIGHTS, HUB, {USER: PASSWORD}) as ours:
            yield ours


def member_figures(cluster: BenchCluster) -> dict[str, tuple[int, int, int]]:
    """Member name -> (Point_u32, NumSessions_u32, Weight_u32) as the controller lists them."""
    by_address = {address: name for name, address in cluster.servers().items()}
    out = {}
    with cluster.admin("controller") as c:
        for row in c.call("EnumFarmMember")["FarmMemberList"]:
            if row["Controller_bool"]:
                continue
            info = c.call("GetFarmInfo", {"Id_u32": row["Id_u32"]})
            name = by_address.get(f"127.0.0.1:{info['Ports_u32'][0]}", "?")
            out[name] = (row["Point_u32"], row["NumSessions_u32"], info["Weight_u32"])
    return out


def settled(cluster: BenchCluster) -> tuple[bool, dict]:
    """Whether every member's listed figures agree with its own session count
    and points(); the figures for the failure message."""
    try:
        local = cluster.sessions({USER})
        listed = member_figures(cluster)
    except AdminError as e:
        return False, {"error": str(e)}
    figures = {name: {"listed": listed.get(name), "own_sessions": local.get(name)} for name in listed}
    ok = sum(local.values()) == SESSIONS and all(
        n == local.get(name) and point == points(n, weight) for name, (point, n, weight) in listed.items())
    return ok, figures


def run_sessions(cluster: BenchCluster) -> tuple[dict, dict[str, dict[str, Any]]]:
    """Connect SESSIONS sessions through the controller, wait (bounded) until
    the listed figures settle; returns the figures and, read while the
    sessions are up, the answers of CLUSTER_READS."""
    async def main() -> tuple[dict, dict[str, dict[str, Any]]]:
        async with contextlib.AsyncExitStack() as stack:
            for i in range(SESSIONS):
                client = await stack.enter_async_context(UserspaceClient(
                    cluster.controller, HUB, USER, PASSWORD, retry=RETRY, ip=f"10.79.0.{i + 1}",
                    mac=bytes([2, 0x79, 0, 0, 0, i + 1])))
                await client.wait_connected(30)
            deadline = time.monotonic() + REPORT_DEADLINE_S
            while True:
                ok, figures = await asyncio.to_thread(settled, cluster)
                if ok or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            return figures, await asyncio.to_thread(cluster_reads, cluster)
    return asyncio.run(main())


def check_points(cluster: BenchCluster, figures: dict) -> None:
    print(f"{cluster.label}: {figures}")
    listed = {name: f["listed"] for name, f in figures.items()}
    assert set(listed) == {"member1", "member2"}, figures
    for name, (point, n, weight) in listed.items():
        assert n == figures[name]["own_sessions"], figures
        assert point == points(n, weight), figures
    assert sum(n for _, n, _ in listed.values()) == SESSIONS
    # with sessions the weight shows: the weight-300 member pays a third
    # of a point per session where a weight-100 one pays a whole point
    heavy_point, heavy_n, heavy_weight = listed["member2"]
    assert heavy_weight == 300 and heavy_n >= 2, figures
    assert heavy_point > points(heavy_n, 100)


def test_points_with_sessions_on_our_cluster(tmp_path):
    with cluster_of("ours", tmp_path) as cluster:
        figures, _ = run_sessions(cluster)
        check_points(cluster, figures)


# ---- SoftEther's cluster as the oracle ------------------------------------------------------

# (server, method, params) read on each cluster while the sessions are up;
# "{member1}" stands for member1's Id_u32 in the controller's list
CLUSTER_READS: list[tuple[str, str, dict[str, Any]]] = [
    ("controller", "EnumFarmMember", {}), ("controller", "GetFarmInfo", {"Id_u32": "{member1}"}),
    ("controller", "GetFarmSetting", {}), ("controller", "GetServerStatus", {}), ("controller", "EnumHub", {}),
    ("controller", "EnumSession", {"HubName_str": HUB}),
    ("member1", "GetFarmSetting", {}), ("member1", "GetFarmConnectionStatus", {}),
    ("member1", "EnumSession", {"HubName_str": HUB}), ("member1", "GetServerStatus", {}),
]

# (server, method) -> (fields only ours has, fields only SoftEther has, why)
CLUSTER_FIELD_DIFFERENCES: dict[tuple[str, str], Difference] = {
    ("controller", "GetFarmSetting"): ({"NumPort_u32", "Ports_u32"}, set(),
                                       "a controller's setting has no public ports: SoftEther writes no element, "
                                       "vpnd NumPort_u32 0 and Ports_u32 [] (extra keys JSON clients ignore)"),
    ("member1", "GetFarmSetting"): ({"NumPort_u32"}, set(),
                                    "SoftEther's GetFarmSetting has no NumPort (GetFarmInfo has); an extra key"),
    ("controller", "EnumFarmMember"): ({"FarmMemberList.EndpointError_str", "NumFarm_u32",
                                        "FarmMemberList.ConfigSerial_u64", "FarmMemberList.ControllerConfigSerial_u64",
                                        "FarmMemberList.ConfigSync_str", "FarmMemberList.DrainState_str",
                                        "ConfigBytesSent_u64"}, set(),
                                       "EndpointError_str, the configuration sync (Config*) and the drain state "
                                       "are vpncluster's own (node/admin/methods_farm.py); NumFarm_u32 is a row "
                                       "count SoftEther keeps in its RPC struct but does not write: an extra key"),
    ("controller", "GetFarmInfo"): ({"EndpointError_str", "NumPort_u32", "NumFarmHub_u32", "NumHubs_u32",
                                     "AssignedClientLicense_u32", "AssignedBridgeLicense_u32",
                                     "ConfigSerial_u64", "ControllerConfigSerial_u64", "ConfigSync_str",
                                     "DrainState_str", "DrainRate_u32", "DrainMoved_u32"}, set(),
                                    "EndpointError_str, Config* and Drain* as in EnumFarmMember; the counts and the license "
                                    "columns (EnumFarmMember's) are extra keys SoftEther's OutRpcFarmInfo does "
                                    "not write, which JSON clients ignore"),
}


def cluster_reads(cluster: BenchCluster) -> dict[str, dict[str, Any]]:
    with cluster.admin("controller") as c:
        ids = {f"127.0.0.1:{c.call('GetFarmInfo', {'Id_u32': r['Id_u32']})['Ports_u32'][0]}": r["Id_u32"]
               for r in c.call("EnumFarmMember")["FarmMemberList"] if not r["Controller_bool"]}
    member1 = ids[cluster.servers()["member1"]]
    out = {}
    for server, method, params in CLUSTER_READS:
        with cluster.admin(server) as c:
            out[f"{server} {method}"] = c.call(method, {k: (member1 if v == "{member1}" else v)
                                                        for k, v in params.items()})
    return out


@pytest.mark.softether
def test_softether_cluster_points_and_field_sets(tmp_path):
    with cluster_of("softether", tmp_path) as real:
        figures, theirs = run_sessions(real)
    check_points(real, figures)
    with cluster_of("ours", tmp_path) as cluster:
        our_figures, ours = run_sessions(cluster)
    check_points(cluster, our_figures)
    report = {}
    for server, method, _ in CLUSTER_READS:
        fa, fb = field_set(ours[f"{server} {method}"]), field_set(theirs[f"{server} {method}"])
        # vpnd names members that missed a collective listing's deadline (a
        # loaded machine); SoftEther leaves them out silently
        fa = {f for f in fa if not f.startswith("MissingServers")}
        differs = unexpected(fa, fb, CLUSTER_FIELD_DIFFERENCES.get((server, method), NO_DIFFERENCE))
        if differs:
            report[f"{server} {method}"] = differs
    assert report == {}, json.dumps(report, indent=1)
