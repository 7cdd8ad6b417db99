"""`vpndrill run SCENARIO.toml`: load, drill, report.

Exit status: 0 the timeline ran and no session was lost, 1 a step failed,
a session was lost or the cluster could not be built, 2 the scenario file
is wrong (one line naming file and line), 130 interrupted (main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tools.vpnclient.client import ClientFailed
from tools.vpnclient.ports import NotConnected
from tools.vpnctl.client import AdminError
from tools.vpndrill import report as rp
from tools.vpndrill.cluster import DrillError
from tools.vpndrill.drill import Drill, Progress
from tools.vpndrill.lab.nscluster import netns_capable
from tools.vpndrill.scenario_file import ScenarioError, load

log = logging.getLogger("vpndrill")
CHAOS_MARGIN_S = 120.0
"""The timeline's bound beyond the chaos itself: the steps before it and the last settle."""


async def connect_and_run(drill: Drill) -> None:
    """Connect the clients, run the timeline; the clients are stopped however it ends."""
    try:
        drill.progress.line(f"connecting {drill.scenario.client_count} clients through the controller")
        await drill.connect()
        await drill.run()
    finally:
        await drill.stop_clients()


def run_scenario(args: argparse.Namespace) -> int:
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"vpndrill: {exc}", file=sys.stderr)
        return 2
    if scenario.chaos is not None:
        chaos = scenario.chaos
        if args.seed is not None:
            chaos = replace(chaos, seed=args.seed)
        if args.chaos_for is not None:
            chaos = replace(chaos, duration_s=args.chaos_for)
        scenario = replace(scenario, chaos=chaos,
                           duration_s=max(scenario.duration_s, chaos.duration_s + CHAOS_MARGIN_S))
    elif args.seed is not None or args.chaos_for is not None:
        print(f"vpndrill: {args.scenario}: --seed and --chaos-for need a [chaos] table", file=sys.stderr)
        return 2
    if args.netns and not netns_capable():
        print("vpndrill: --netns needs root's capabilities (namespaces, veth, TAP devices) and /dev/net/tun",
              file=sys.stderr)
        return 2
    progress = Progress()
    error = None
    with tempfile.TemporaryDirectory(prefix="vpndrill-") as tmp:
        try:
            drill = Drill(scenario, Path(tmp), progress, netns=args.netns)
        except DrillError as exc:
            print(f"vpndrill: {args.scenario}: {exc}", file=sys.stderr)
            return 2
        with drill:
            try:
                progress.line(f"{scenario.name}: starting a controller and {len(scenario.members)} members")
                drill.build()
                asyncio.run(connect_and_run(drill))
            except (DrillError, AdminError, ClientFailed, NotConnected) as exc:
                error = f"drill stopped: {exc}"
                log.error("%s", error)
    failures = drill.failures + ([error] if error else [])
    report = drill.timeline.report()
    rp.emit(report, scenario.name, as_json_=args.json, plot_path=args.plot, failures=failures, pids=drill.pids)
    return 0 if not failures and report.lost == 0 else 1
