"""`vpndrill demo`: the README's first command.

On 127.0.0.1, in a temp dir, without root: a controller and two members
(member2 with weight 200), a static hub OFFICE and a dynamic hub LAB with
users (tools/vpndrill/scenarios/demo.toml), a dozen userspace VPN sessions
(tools/vpnclient) connected through the controller one after the other, the
ClusterMemberList table (vpnctl, as an operator sees it) and where each
session landed; then the busiest member is killed (-9), every session is
shown coming back elsewhere with its measured gap, the member is started
again, and the drill's report follows. Everything started is stopped by PID
(clients first, then members, then the controller) however it ends.

With root's capabilities (tools/vpndrill/lab/nscluster.py netns_capable)
the same runs in network namespaces (scenarios/demo-netns.toml): each server
in its own namespace and link, a LAN host behind a local bridge of OFFICE on
every server, the dozen OFFICE sessions TAP clients (vpnclient --tap, each
in a namespace of its own) pinging it with the real `ping`, whose answers
and losses are in the report. `--loopback` keeps the loopback path.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tabulate import tabulate

from tools.vpnclient.client import ClientFailed
from tools.vpnclient.ports import NotConnected
from tools.vpnctl.client import AdminError
from tools.vpndrill import report as rp
from tools.vpndrill.cluster import REPO_ROOT, DrillError, Node
from tools.vpndrill.drill import Drill, Progress
from tools.vpndrill.lab.nscluster import netns_capable
from tools.vpndrill.scenario_file import load

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def vpnctl(node: Node, *args: str, hub: str | None = None, show: bool = True, json_out: bool = False) -> str:
    """Run vpnctl against `node` as an operator would, echoing the command line."""
    cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"{node.address}:{node.port}",
           "--password-file", str(node.pw_file), *(["--hub", hub] if hub else []),
           *(["--json"] if json_out else []), *args]
    if show:
        print(f"\n[{node.name}] $ vpnctl " + " ".join(shlex.quote(a) for a in cmd[cmd.index("--server"):]),
              flush=True)
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise DrillError(f"vpnctl {args[0]} failed ({result.returncode}): {result.stderr.strip()}")
    if show:
        print(result.stdout, end="", flush=True)
    return result.stdout


Where = dict[str, str | None]


async def _connect_and_run(drill: Drill) -> tuple[Where, Where]:
    """Connect, show where the sessions landed, run the kill; returns where each was before and after."""
    ctl = drill.cluster.controller
    try:
        mode = "--tap in its own namespace, pinging the LAN" if drill.topology else "--userspace"
        print(f"\n$ 12 x vpnclient --server {ctl.address}:{ctl.port} --hub OFFICE --user alice {mode}\n"
              f"$ 2 x vpnclient --server {ctl.address}:{ctl.port} --hub LAB --user bob --userspace "
              "(pinging each other)", flush=True)
        await drill.connect()
        before = {c.name: drill.name_of(c.server()) for c in drill.clients}
        print("\nsessions:")
        print(tabulate([(c.name, c.hub, c.session_name(), before[c.name]) for c in drill.clients],
                       headers=("client", "hub", "session", "server")))
        office = Counter(before[c.name] for c in drill.clients if c.hub == "OFFICE")
        print("\nwhere the OFFICE sessions landed (weights: controller 100, member1 100, member2 200):")
        print(tabulate([(n.name, n.port, office.get(n.name, 0)) for n in drill.cluster.nodes],
                       headers=("server", "port", "sessions")))
        await asyncio.to_thread(vpnctl, ctl, "ClusterMemberList")
        print("\nnow: kill -9 of the busiest member, each client comes back through the controller", flush=True)
        await drill.run()
        return before, drill.last_where
    finally:
        await drill.stop_clients()


def demo(loopback: bool = False) -> int:
    netns = not loopback and netns_capable()
    scenario = load(SCENARIOS / ("demo-netns.toml" if netns else "demo.toml"))
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="vpncluster-demo-") as tmp:
        print("in network namespaces, as root" if netns else "on 127.0.0.1, without root", flush=True)
        drill = Drill(scenario, Path(tmp), progress, netns=netns)
        codes: list[int | None] = []
        with drill:
            try:
                for n in drill.cluster.nodes:
                    print(f"$ vpnd --state-dir {n.state_dir} --listen {n.address}:{n.port} "
                          f"--admin-password-file {n.pw_file} &", flush=True)
                drill.build()
                ctl, _, m2 = drill.cluster.nodes
                print("\n(controller set with ClusterSettingController, members with ClusterSettingMember "
                      "/WEIGHT:100 and /WEIGHT:200; hubs OFFICE static and LAB dynamic, users alice and bob)")
                vpnctl(ctl, "ClusterMemberList")
                vpnctl(ctl, "HubList")
                vpnctl(m2, "ClusterConnectionStatusGet")
                before, after = asyncio.run(_connect_and_run(drill))
                report = drill.timeline.report()
                gaps = {k: sum(b - a for a, b in v) for k, v in report.gaps.items()}
                print("\nevery session after the kill:")
                print(tabulate([(c.name, c.hub, before[c.name], after[c.name] or "DOWN",
                                 f"{gaps[c.name]:.2f}" if report.gaps.get(c.name) else "-")
                                for c in drill.clients], headers=("client", "hub", "before", "after", "gap s")))
                rows = json.loads(vpnctl(ctl, "ClusterMemberList", show=False, json_out=True))["FarmMemberList"]
                vpnctl(ctl, "ClusterMemberList")
                print()
                print(rp.tables(report, "demo", drill.failures))
                failed = bool(drill.failures) or report.lost > 0 or len(rows) != 3
            except (DrillError, AdminError, ClientFailed, NotConnected) as exc:
                print(f"demo: {exc}", file=sys.stderr)
                failed = True
            finally:
                # By PID: SIGTERM, SIGKILL after 10 s, so the demo never leaves a vpnd behind.
                codes = [n.stop() for n in [*drill.cluster.members, drill.cluster.controller]]
        print(f"\nall nodes stopped (exit codes {codes}).")
        return 1 if failed or any(code != 0 for code in codes) else 0
