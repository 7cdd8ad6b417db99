"""Cluster failure detection on loopback: how long until the controller's
member list (EnumFarmMember) stops showing a member that

  dead    was killed with SIGKILL (its TCP connection closes at once), or
  silent  was stopped with SIGSTOP (its connection stays open, it says nothing),

and how long until it is back (restart / SIGCONT: rejoin). Plus the
staleness of the figures in the list: VPN sessions (tools/vpnclient
UserspaceClient, through the controller, which only controls, so each lands
on the member) log in or out one at a time and we time until EnumFarmMember
shows the member's new session count (up: the controller counts a session
when it places the login; down: from the member's report).

Real vpnd processes: one controller, one member (the victim), built and
driven by vpndrill's code (tools/vpndrill: the cluster, the kill / stop run
and its timing; tools/vpndrill/lab/clusters.py: the cluster with a hub). The list is polled every 30 ms over one kept-alive HTTPS
connection; "out" is from the signal to the first list without the member,
"back" from the restart / SIGCONT to the first list with it. Median and max
of RUNS.

    python3 bench/detect.py [--runs 5]

The requirement is "out of load balancing within 3 s" (liveness timeout
3 s, polls every 0.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tools.vpnclient.client import UserspaceClient  # noqa: E402
from tools.vpnclient.retry import RetryPolicy  # noqa: E402
from tools.vpndrill.cluster import LocalCluster  # noqa: E402
from tools.vpndrill.lab.clusters import OurCluster  # noqa: E402
from tools.vpndrill.scenarios import run_once  # noqa: E402

POLL_S = 0.02
DEADLINE_S = 30.0
HUB, USER, PASSWORD = "detect", "load", "pw-load"


async def time_until(cond, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        if await asyncio.to_thread(cond):
            return time.monotonic() - start
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"{what}: not within {DEADLINE_S} s")


def member_sessions(cluster: LocalCluster) -> int | None:
    rows = cluster.member_rows()
    return rows[0]["NumSessions_u32"] if rows else None


async def staleness(ours: OurCluster, runs: int) -> tuple[list[float], list[float]]:
    """Sessions log in (then out) one at a time: the time until the
    controller's list shows the member's new count, up and down."""
    cluster = ours.local
    clients: list[UserspaceClient] = []
    ups, downs = [], []
    base = await asyncio.to_thread(member_sessions, cluster) or 0
    try:
        for i in range(1, runs + 1):
            await asyncio.sleep(0.137 * i % 0.5)  # start at different points of the poll cycle
            c = UserspaceClient(ours.controller, HUB, USER, PASSWORD, retry=RetryPolicy(max_retries=5))
            clients.append(c)
            await c.wait_connected(DEADLINE_S)
            if ours.name_of(c.status.server) != "member1":
                raise RuntimeError(f"session {i} landed on {c.status.server}, not on the member")
            ups.append(await time_until(lambda n=base + i: member_sessions(cluster) == n, "login listed"))
        for i in range(runs - 1, -1, -1):
            await asyncio.sleep(0.137 * i % 0.5)
            await clients.pop().stop()
            downs.append(await time_until(lambda n=base + i: member_sessions(cluster) == n, "logout listed"))
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    return ups, downs


def summary(name: str, values: list[float]) -> list:
    return [name, len(values), f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"]


async def main_async(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        ours = await asyncio.to_thread(OurCluster, Path(tmp), [100], HUB, {USER: PASSWORD})
        cluster = ours.local
        member = cluster.members[0]
        try:
            table = []
            # The drill's run (tools/vpndrill/scenarios.py) in a thread.
            for name, scenario in (("dead (kill -9)", "kill"), ("silent (SIGSTOP)", "stop")):
                outs, backs = [], []
                for i in range(runs):
                    # Steady state first (a kill right after a rejoin would always
                    # measure the full timeout), at different points of the poll cycle.
                    await asyncio.sleep(0.5 + (0.137 * i) % 0.5)
                    r = await asyncio.to_thread(run_once, cluster, scenario, member, timeout_s=DEADLINE_S)
                    if r.error:
                        raise RuntimeError(f"{name}: {r.error}")
                    outs.append(r.out_s)
                    backs.append(r.back_s)
                    print(f"  {name}: out after {r.out_s:.2f} s, back after {r.back_s:.2f} s", flush=True)
                table.append(summary(f"{name}: out of the list", outs))
                table.append(summary(f"{name}: back in the list", backs))
            await asyncio.sleep(1.0)  # the member's hub is back after its rejoin
            ups, downs = await staleness(ours, runs)
            table.append(summary("member list staleness: session count after a login", ups))
            table.append(summary("member list staleness: session count after a logout", downs))
            print(tabulate(table, headers=["measure", "runs", "median s", "min s", "max s"]))
        except Exception:
            print(f"controller log:\n{cluster.controller.log_tail(3000)}\nmember log:\n{member.log_tail(3000)}")
            raise
        finally:
            await asyncio.to_thread(ours.close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (>= 5 for the median)")
    args = parser.parse_args()
    asyncio.run(main_async(max(1, args.runs)))


if __name__ == "__main__":
    main()
