"""Cluster failure detection on loopback: how long until the controller's
member list (EnumFarmMember) stops showing a member that

  dead    was killed with SIGKILL (its TCP connection closes at once), or
  silent  was stopped with SIGSTOP (its connection stays open, it says nothing),

and how long until it is back (restart / SIGCONT: rejoin). Plus the
staleness of the figures in the list: a scripted member (tests/cluster_fakes.py)
changes its session count and we time until EnumFarmMember shows it.

Real vpnd processes: one controller, one member (the victim). The list is
polled every 20 ms over one HTTPS connection per call; times are from the
signal to the first list without (with) the member. Median and max of RUNS.

    python3 bench/detect.py [--runs 5]

The requirement is "out of load balancing within 3 s" (liveness timeout
3 s, polls every 0.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tests.cluster_fakes import FakeMember, discover  # noqa: E402
from tests.vpnd_proc import Vpnd  # noqa: E402

POLL_S = 0.02
DEADLINE_S = 30.0
FAKE_HOST = "bench-fake"


def rows(ctl: Vpnd) -> list[dict]:
    return ctl.call("EnumFarmMember")["result"]["FarmMemberList"]


def victim_listed(ctl: Vpnd) -> bool:
    return any(not r["Controller_bool"] and r["Hostname_str"] != FAKE_HOST for r in rows(ctl))


async def time_until(cond, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE_S:
        if await asyncio.to_thread(cond):
            return time.monotonic() - start
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"{what}: not within {DEADLINE_S} s")


async def dead(ctl: Vpnd, member: Vpnd) -> tuple[float, float]:
    member.kill()
    out = await time_until(lambda: not victim_listed(ctl), "killed member out")
    member.start()
    t0 = time.monotonic()
    await time_until(lambda: victim_listed(ctl), "restarted member back")
    return out, time.monotonic() - t0


async def silent(ctl: Vpnd, member: Vpnd) -> tuple[float, float]:
    os.kill(member.proc.pid, signal.SIGSTOP)
    try:
        out = await time_until(lambda: not victim_listed(ctl), "stopped member out")
    finally:
        os.kill(member.proc.pid, signal.SIGCONT)
    back = await time_until(lambda: victim_listed(ctl), "continued member back")
    return out, back


async def staleness(ctl: Vpnd, fake: FakeMember, runs: int) -> list[float]:
    ages = []
    for i in range(1, runs + 1):
        await asyncio.sleep(0.137 * i % 0.5)  # start at different points of the poll cycle
        fake.sessions = i

        def shows() -> bool:
            return any(r["Hostname_str"] == FAKE_HOST and r["NumSessions_u32"] == i for r in rows(ctl))
        ages.append(await time_until(shows, "new session count listed"))
    return ages


def summary(name: str, values: list[float]) -> list:
    return [name, len(values), f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}"]


async def main_async(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="detect-") as tmp:
        ctl, member = Vpnd(Path(tmp) / "ctl"), Vpnd(Path(tmp) / "m1")
        fake = None
        try:
            ctl.start(wait=False)
            member.start()
            ctl.wait_ready()
            assert "result" in ctl.call("SetFarmSetting", {"ServerType_u32": 1})
            await time_until(lambda: discover(ctl.port).get("bus_port"), "controller bus")
            assert "result" in member.call("SetFarmSetting", {
                "ServerType_u32": 2, "ControllerName_str": "127.0.0.1", "ControllerPort_u32": ctl.port,
                "MemberPasswordPlaintext_str": ctl.password, "PublicIp_ip": "127.0.0.1",
                "Ports_u32": [member.port]})
            await time_until(lambda: victim_listed(ctl), "member joined")
            fake = FakeMember(ctl.port, ctl.password, hostname=FAKE_HOST)
            await fake.connect()
            await fake.join()
            table = []
            for name, probe in (("dead (kill -9)", dead), ("silent (SIGSTOP)", silent)):
                outs, backs = [], []
                for i in range(runs):
                    # Steady state first (a kill right after a rejoin would always
                    # measure the full timeout), at different points of the poll cycle.
                    await asyncio.sleep(1.0 + (0.137 * i) % 0.5)
                    out, back = await probe(ctl, member)
                    outs.append(out)
                    backs.append(back)
                    print(f"  {name}: out after {out:.2f} s, back after {back:.2f} s", flush=True)
                table.append(summary(f"{name}: out of the list", outs))
                table.append(summary(f"{name}: back in the list", backs))
            table.append(summary("member list staleness (session count)", await staleness(ctl, fake, runs * 2)))
            print(tabulate(table, headers=["measure", "runs", "median s", "min s", "max s"]))
        except Exception:
            print(f"controller log:\n{ctl.log()[-3000:]}\nmember log:\n{member.log()[-3000:]}")
            raise
        finally:
            if fake is not None:
                await fake.close()
            if member.proc and member.proc.poll() is None:
                os.kill(member.proc.pid, signal.SIGCONT)
            member.stop()
            ctl.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measure (>= 5 for the median)")
    args = parser.parse_args()
    asyncio.run(main_async(max(1, args.runs)))


if __name__ == "__main__":
    main()
