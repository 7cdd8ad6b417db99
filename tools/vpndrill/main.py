"""`vpndrill`: the cluster demo, failover drills with a report, and watching a live cluster.

    vpndrill demo                                  the README's first command (tools/vpndrill/demo.py)
    vpndrill run SCENARIO.toml [--json] [--plot FILE.png]
    vpndrill observe --server HOST:PORT [--password-file F] [--for S] [--json] [--plot FILE.png]
    vpndrill local --members 3 --scenario kill|stop|restart|all --runs N [--json] [--liveness S]

`run` builds the cluster a scenario file describes (tools/vpndrill/scenario_file.py)
on 127.0.0.1, connects its clients, applies its timeline (tools/vpndrill/drill.py)
and reports per event detection, eviction, takeover gaps, sessions and
traffic lost (tools/vpndrill/timeline.py, report.py). `observe` records the
same timeline from any cluster's admin API without touching it
(tools/vpndrill/observe.py).

`local` builds a throw-away cluster of vpnd processes on 127.0.0.1 (a
controller and N members in a temp dir), then per run takes a member round
robin, applies the fault and times, from the controller's member list, how
long until the member is out and until it is back (tools/vpndrill/scenarios.py).
Prints a table (or JSON with every run and every PID started) on stdout; logs
go to stderr.

Exit status: 0 every run met the bounds, 1 a run failed or the drill could not
run, 2 usage error, 130 interrupted (Ctrl-C / SIGTERM; the nodes are stopped
first in every case).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

from tools.vpnctl.client import AdminError
from tools.vpndrill.cluster import LIVENESS_ENV, DrillError, LocalCluster
from tools.vpndrill.scenarios import (SCENARIOS, TABLE_HEADERS, passed, result_dicts, run_once, summarize,
                                      table_rows)

log = logging.getLogger("vpndrill")
DEFAULT_LIVENESS_S = 3.0  # the controller's default (node/cluster/controller_bus.py)
MAX_MEMBERS = 16
MAX_RUNS = 100


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: stop the nodes and leave. A KeyboardInterrupt,
    so that no `except Exception` on the way (logging's emit has one) can
    swallow it, and so that asyncio lets it out of its loop: asyncio logs and
    drops any other BaseException raised in a callback, and the drill ran on
    with further signals ignored."""


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:
        # A child forked by a library (pyroute2's NetNS helper) inherits this
        # handler: there the signal must do what it does by default.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # Further signals are ignored so that the cleanup itself is not cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    interrupted = Interrupted(signal.Signals(signum).name)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise interrupted from None
    # Raised in a task's step it would also be stored in that task, which
    # then logs "exception never retrieved"; from a callback of its own it
    # just leaves the loop. Threadsafe: that one wakes a loop blocked in select.
    loop.call_soon_threadsafe(_raise, interrupted)


def _raise(exc: BaseException) -> None:
    raise exc


def _bounded(lo: float, hi: float, kind=int):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is not within {lo:g}..{hi:g}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vpndrill", description="Scripted failover drills for vpncluster.")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a controller and two members, a dozen sessions, one member killed")
    demo.add_argument("--loopback", action="store_true",
                      help="on 127.0.0.1 with userspace sessions even as root (default as root: namespaces, TAP)")
    run = sub.add_parser("run", help="run a scenario file on a throw-away loopback cluster")
    run.add_argument("scenario", type=Path, help="the scenario (TOML; see tools/vpndrill/scenarios/)")
    run.add_argument("--netns", action="store_true",
                     help="each server in its own network namespace and link (root; needed by link_down, "
                          "partition)")
    run.add_argument("--seed", type=_bounded(0, 2**32), help="the [chaos] table's seed instead of the file's")
    run.add_argument("--chaos-for", type=_bounded(1, 3600, float), metavar="SECONDS",
                     help="the [chaos] table's duration_s instead of the file's")
    _report_options(run)
    observe = sub.add_parser("observe", help="watch a running cluster through its admin API, touching nothing")
    observe.add_argument("--server", required=True, metavar="HOST:PORT", help="the cluster controller")
    observe.add_argument("--password-file", type=Path, metavar="F",
                         help="the server admin password (default: $VPNCTL_PASSWORD, else empty)")
    observe.add_argument("--for", dest="for_s", type=_bounded(0.5, 86400, float), metavar="SECONDS",
                         help="stop after this long (default: at Ctrl-C)")
    observe.add_argument("--interval", type=_bounded(0.05, 60, float), default=0.2, metavar="S",
                         help="poll every S seconds (default 0.2)")
    _report_options(observe)
    local = sub.add_parser("local", help="drill a throw-away cluster of vpnd processes on 127.0.0.1")
    local.add_argument("--members", type=_bounded(1, MAX_MEMBERS), default=3, help="member nodes (default 3)")
    local.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    local.add_argument("--runs", type=_bounded(1, MAX_RUNS), default=3, help="runs per scenario (default 3)")
    local.add_argument("--liveness", type=_bounded(0.2, 600, float), metavar="S",
                       help=f"set {LIVENESS_ENV} for the nodes (default: theirs, 3 s)")
    local.add_argument("--json", action="store_true", help="JSON report instead of a table")
    local.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON report instead of tables")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the timeline (needs matplotlib)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def drill_local(args: argparse.Namespace) -> int:
    liveness = args.liveness if args.liveness is not None else DEFAULT_LIVENESS_S
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results, error = [], None
    with tempfile.TemporaryDirectory(prefix="vpndrill-") as tmp, \
            LocalCluster(Path(tmp), args.members, args.liveness) as cluster:
        try:
            cluster.start()
            turn = 0
            for name in scenarios:
                for i in range(args.runs):
                    victim = cluster.members[turn % len(cluster.members)]
                    turn += 1
                    r = run_once(cluster, name, victim)
                    results.append(r)
                    log.info("%s run %d (%s): out %s, back %s%s%s", name, i + 1, victim.name,
                             _s(r.out_s), _s(r.back_s), ", others disturbed" if r.disturbed else "",
                             f", FAILED: {r.error}" if r.error else "")
        except (DrillError, AdminError) as exc:
            error = str(exc)
            log.error("drill stopped: %s", error)
            for n in cluster.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    log.error("%s log ends: %s", n.name, n.last_log_line())
    summary = summarize(results, liveness)
    ok = error is None and passed(results, liveness) and len(results) == len(scenarios) * args.runs
    if args.json:
        print(json.dumps({"ok": ok, "error": error, "members": args.members, "liveness_s": liveness,
                          "pids": cluster.pids, "scenarios": summary, "runs": result_dicts(results)}, indent=2))
    elif summary:
        print(tabulate(table_rows(summary), headers=TABLE_HEADERS))
    return 0 if ok else 1


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors: exit 2 with argparse's one line
    logging.basicConfig(level=getattr(args, "log_level", "WARNING"), stream=sys.stderr, format="vpndrill: %(message)s")
    if args.command != "local" and logging.getLogger().level >= logging.WARNING:
        logging.getLogger("vpnclient").setLevel(logging.ERROR)  # each takeover is in the report, not a warning
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        if args.command == "demo":
            from tools.vpndrill.demo import demo
            return demo(args.loopback)
        if args.command == "run":
            from tools.vpndrill.runner import run_scenario
            return run_scenario(args)
        if args.command == "observe":
            from tools.vpndrill.observe import observe
            return observe(args)
        return drill_local(args)
    except Interrupted as exc:
        print(f"vpndrill: interrupted by {exc}; every node was stopped", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"vpndrill: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
