"""Collective SessionList on loopback: how long the controller's EnumSession
takes over ~1,000 sessions on 3 servers (controller + 2 members), with every
member answering and with one member frozen (SIGSTOP).

Real vpnd processes (tools/vpndrill's LocalCluster, liveness raised to 60 s
so the frozen member stays listed and is asked). Sessions are hub-administrator
logins straight to each server (CLUSTERING.md §3.9.9; SESSIONS / 3 each, at
most CONCURRENCY logins at a time, the whole set bounded by SETUP_DEADLINE_S);
they stay up on their keep-alives while the calls are measured. vpnd, as
SoftEther, takes at most 256 connections per client IP, so the logins come
from 127.0.0.2, 127.0.0.3, ... (PER_SOURCE_IP each; loopback only). Admin
calls go over one kept-alive HTTPS connection (tools/vpnctl's AdminClient);
the figure is the median (and max) of CALLS calls. For scale, the same call
on one member alone (its own sessions only).

    python3 bench/collective.py [--sessions 1000] [--calls 7]

The controller asks its members concurrently with a 0.3 s deadline per
member (node/admin/collective.py), so the frozen row is expected at about
0.3 s plus the listing. SoftEther's own controller is not measured here
(it asks its members one after another over its farm task channel, with
no per-call deadline: a frozen member blocks the call until the farm
connection times out); see the report below the table.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tabulate import tabulate  # noqa: E402

from tools.vpnclient.connection import Connection, connect  # noqa: E402
from tools.vpnclient.login import PasswordLogin  # noqa: E402
from tools.vpnctl.client import AdminClient  # noqa: E402
from tools.vpndrill.cluster import LocalCluster, Node  # noqa: E402

HUB, HUB_PW = "BENCH", "bench-hub-pw"
LIVENESS_S = 60.0
CONCURRENCY = 24
PER_SOURCE_IP = 200
SETUP_DEADLINE_S = 240.0
LOGIN_TIMEOUT_S = 20.0
MAX_SESSIONS = 3000


class SpreadLoop(asyncio.SelectorEventLoop):
    """Connects to loopback from 127.0.0.2, 127.0.0.3, ... in turn
    (PER_SOURCE_IP connections each), under vpnd's per-IP connection limit."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        host = args[1] if len(args) > 1 else kwargs.get("host")
        if kwargs.get("local_addr") is None and isinstance(host, str) and host.startswith("127."):
            kwargs["local_addr"] = (f"127.0.0.{2 + self.opened // PER_SOURCE_IP}", 0)
            self.opened += 1
        return await super().create_connection(*args, **kwargs)


async def open_sessions(node: Node, count: int, gate: asyncio.Semaphore) -> list[Connection]:
    credentials = PasswordLogin.from_plain("administrator", HUB_PW)

    async def one() -> Connection | None:
        async with gate:
            try:
                _, conn = await connect("127.0.0.1", node.port, hub=HUB, username="administrator",
                                        credentials=credentials, timeout_s=LOGIN_TIMEOUT_S)
            except Exception as exc:  # one login lost costs one session, reported in the count
                logging.getLogger("bench").warning("%s: login failed: %s", node.name, exc)
                return None
            return conn

    done = await asyncio.gather(*(one() for _ in range(count)))
    return [c for c in done if c is not None]


def timed_calls(client: AdminClient, calls: int) -> tuple[list[float], dict]:
    times, last = [], {}
    for _ in range(calls):
        start = time.perf_counter()
        last = client.call("EnumSession", {"HubName_str": HUB})
        times.append(time.perf_counter() - start)
    return times, last


def row(what: str, times: list[float], result: dict) -> list[Any]:
    missing = ", ".join(m["Hostname"] + f" (ID {m['Id']})" for m in result.get("MissingServers", [])) or "-"
    return [what, len(result.get("SessionList", [])), f"{statistics.median(times) * 1000:.0f}",
            f"{max(times) * 1000:.0f}", missing]


async def bench(cluster: LocalCluster, sessions: int, calls: int) -> list[list[Any]]:
    ctl = cluster.controller
    with ctl.client() as c:
        c.call("CreateHub", {"HubName_str": HUB, "HubType_u32": 1, "Online_bool": True,
                             "AdminPasswordPlainText_str": HUB_PW})
    for m in cluster.members:  # the pushed hub runs on each member
        deadline = time.monotonic() + 30
        with m.client() as c:
            while HUB not in {h["HubName_str"] for h in c.call("EnumHub")["HubList"]}:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{m.name} did not get hub {HUB}")
                await asyncio.sleep(0.1)
    gate = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()
    per_node = [sessions // 3 + (1 if i < sessions % 3 else 0) for i in range(3)]
    opened = await asyncio.wait_for(
        asyncio.gather(*(open_sessions(n, k, gate) for n, k in zip(cluster.nodes, per_node))), SETUP_DEADLINE_S)
    print(f"{sum(map(len, opened))} sessions up ({', '.join(str(len(o)) for o in opened)} per server) "
          f"in {time.monotonic() - started:.1f} s")
    rows = []
    try:
        with ctl.client() as admin:
            times, result = await asyncio.to_thread(timed_calls, admin, calls)
            rows.append(row("controller, every member answers", times, result))
            frozen = cluster.members[0]
            frozen.signal(signal.SIGSTOP)
            try:
                times, result = await asyncio.to_thread(timed_calls, admin, calls)
            finally:
                frozen.signal(signal.SIGCONT)
            rows.append(row(f"controller, {frozen.name} frozen (SIGSTOP)", times, result))
        member = cluster.members[1]
        with member.client() as admin:
            times, result = await asyncio.to_thread(timed_calls, admin, calls)
            rows.append(row(f"{member.name} alone (its own sessions)", times, result))
    finally:
        for conns in opened:
            for conn in conns:
                conn.close()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--calls", type=int, default=7)
    args = p.parse_args()
    if not 3 <= args.sessions <= MAX_SESSIONS or not 1 <= args.calls <= 100:
        p.error(f"--sessions 3..{MAX_SESSIONS}, --calls 1..100")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="bench-collective-") as tmp, \
            LocalCluster(Path(tmp), members=2, liveness_s=LIVENESS_S) as cluster:
        cluster.start()
        with asyncio.Runner(loop_factory=SpreadLoop) as runner:
            rows = runner.run(bench(cluster, args.sessions, args.calls))
    print(tabulate(rows, headers=["EnumSession on", "rows", "median ms", "max ms", "missing"]))
    print("SoftEther comparison: skipped (not run in this bench; SoftEther's controller asks members one "
          "after another with no per-call deadline, see the module docstring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
