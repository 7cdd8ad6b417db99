"""Cluster failure detection on loopback: how long until the controller's
member list (EnumFarmMember) stops showing a member that

  dead    was killed with SIGKILL (its TCP connection closes at once), or
  silent  was stopped with SIGSTOP (its connection stays open, it says nothing),

and how long until it is back (restart / SIGCONT: rejoin). Plus the
staleness of the figures in the list: a scripted member (tests/cluster_fakes.py)
changes its session count and we time until EnumFarmMember shows it.

Real vpnd processes: one controller, one member (the victim), built and
driven by vpndrill's code (tools/vpndrill: the cluster, the kill / stop run
and its timing). The list is polled every 30 ms over one kept-alive HTTPS
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

from tests.cluster_fakes import FakeMember  # noqa: E402
from tools.vpndrill.cluster import LocalCluster  # noqa: E402
from tools.vpndrill.scenarios import run_once  # noqa: E402

POLL_S = 0.02
DEADLINE_S = 30.0
FAKE_HOST = "bench-fake"


async def time_until(cond, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        if await asyncio.to_thread(cond):
            return time.monotonic() - start
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"{what}: not within {DEADLINE_S} s")


async def staleness(cluster: LocalCluster, fake: FakeMember, runs: int) -> list[float]:
    ages = []
    for i in range(1, runs + 1):
        await asyncio.sleep(0.137 * i % 0.5)  # start at different points of the poll cycle
        fake.sessions = i

        def shows() -> bool:
            rows = cluster.member_rows()
            return any(r["Hostname_str"] == FAKE_HOST and r["NumSessions_u32"] == i for r in rows)
        ages.append(await time_until(shows, "new session count listed"))
    return ages


def summary(name: str, values: list[float]) -> list:
    return [name, len(values), f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"]


async def main_async(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp, LocalCluster(Path(tmp), members=1) as cluster:
        member = cluster.members[0]
        fake = None
        try:
            await asyncio.to_thread(cluster.start)
            fake = FakeMember(cluster.controller.port, cluster.controller.password, hostname=FAKE_HOST)
            await fake.connect()
            await fake.join()
            table = []
            # The drill's run (tools/vpndrill/scenarios.py) in a thread, so that the
            # fake member on this loop keeps answering the controller's polls.
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
            table.append(summary("member list staleness (session count)", await staleness(cluster, fake, runs * 2)))
            print(tabulate(table, headers=["measure", "runs", "median s", "min s", "max s"]))
        except Exception:
            print(f"controller log:\n{cluster.controller.log_tail(3000)}\nmember log:\n{member.log_tail(3000)}")
            raise
        finally:
            if fake is not None:
                await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (>= 5 for the median)")
    args = parser.parse_args()
    asyncio.run(main_async(max(1, args.runs)))


if __name__ == "__main__":
    main()
