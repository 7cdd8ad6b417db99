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
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from controller.points import points
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


@pytest.mark.parametrize("kind", [pytest.param("softether", marks=pytest.mark.softether), "ours"])
def test_points_with_sessions_are_the_formulas(kind, tmp_path):
    with cluster_of(kind, tmp_path) as cluster:
        async def main() -> dict:
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
                        return figures
                    await asyncio.sleep(0.5)

        figures = asyncio.run(main())
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
