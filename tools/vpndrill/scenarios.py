"""Member-loss drills: the fault steps, the watch over the member list, and the report.

A run takes one member (round robin over the members) and:

  kill     SIGKILL; when it is out of the list, start it again
  stop     SIGSTOP; when it is out of the list, SIGCONT
  restart  SIGTERM (a clean shutdown); when it is out, start it again

`out_s` is from the fault to the first EnumFarmMember poll without the member,
`back_s` from the recovery (start / SIGCONT) to the first poll with it. At
every poll all the other members must be listed, else the run is
"disturbed". The controller evicts a silent member after the liveness
timeout (VPNCLUSTER_LIVENESS_S, default 3 s, CLUSTERING.md), so a run passes
when out_s <= liveness + OUT_SLACK_S and back_s <= BACK_BOUND_S and nothing
else moved; a run that does not finish within RUN_TIMEOUT_S is failed, never
waited for longer.

`RunWatch` is the sans-IO part: fed (now, listed ports) samples and the
recovery instant, it says which phase the run is in and makes the result;
`run_once` is the thin driver that polls the real cluster. `summarize` and
`passed` turn results into the report.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Callable

from tools.vpnctl.client import AdminError
from tools.vpndrill.cluster import DrillError, LocalCluster, Node, wait_until

SCENARIOS = ("kill", "stop", "restart")
OUT_SLACK_S = 1.0
BACK_BOUND_S = 15.0
RUN_TIMEOUT_S = 30.0
STEADY_TIMEOUT_S = 15.0
POLL_S = 0.03
SETTLE_S = 0.5  # steady state before a fault: a kill right after a rejoin would measure more than eviction


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    scenario: str
    member_port: int
    out_s: float | None
    """Fault to the first list without the member; None if it never left."""
    back_s: float | None
    """Recovery to the first list with the member again; None if it never came back."""
    disturbed: bool
    """Another member was missing from at least one poll during the run."""
    error: str | None = None
    """Why the run failed before it finished (timeout, admin call error)."""


class RunWatch:
    """Phases: "out" (waiting for the member to leave), "recover" (left; the
    driver must recover it and call `recovered(now)`), "back" (waiting for
    it to be listed), "done"."""

    def __init__(self, victim: int, others: set[int], fault_at: float) -> None:
        self.victim, self.others, self.fault_at = victim, set(others), fault_at
        self.phase = "out"
        self.out_s: float | None = None
        self.back_s: float | None = None
        self.recover_at: float | None = None
        self.disturbed = False

    def observe(self, now: float, listed: set[int]) -> None:
        if not self.others <= listed:
            self.disturbed = True
        if self.phase == "out" and self.victim not in listed:
            self.out_s = now - self.fault_at
            self.phase = "recover"
        elif self.phase == "back" and self.victim in listed:
            assert self.recover_at is not None  # recovered() set it when it entered "back"
            self.back_s = now - self.recover_at
            self.phase = "done"

    def recovered(self, now: float) -> None:
        if self.phase != "recover":
            raise ValueError(f"recovered() in phase {self.phase!r}")
        self.recover_at = now
        self.phase = "back"

    def result(self, scenario: str, error: str | None = None) -> RunResult:
        if error is None and self.phase != "done":
            error = f"unfinished in phase {self.phase!r}"
        return RunResult(scenario=scenario, member_port=self.victim, out_s=self.out_s, back_s=self.back_s,
                         disturbed=self.disturbed, error=error)


def fault(scenario: str, node: Node) -> None:
    if scenario == "kill":
        node.kill()
    elif scenario == "stop":
        node.signal(signal.SIGSTOP)  # the connection stays open, the member says nothing
    elif scenario == "restart":
        node.signal(signal.SIGTERM)  # a clean shutdown
    else:
        raise ValueError(f"unknown scenario {scenario!r}")


def recover(scenario: str, node: Node, timeout_s: float) -> None:
    """Bring the member back (SIGCONT, or start it again) within `timeout_s`."""
    if scenario == "stop":
        node.signal(signal.SIGCONT)
        return
    proc = node.live_process()
    if proc is not None:  # restart: the clean shutdown must end before the port is free again
        try:
            proc.wait(max(0.1, timeout_s))
        except subprocess.TimeoutExpired:
            raise DrillError(f"{node.name}: pid {proc.pid} still running {timeout_s:.0f} s after SIGTERM") \
                from None
    node.start(timeout_s=max(1.0, timeout_s))


def run_once(cluster: LocalCluster, scenario: str, victim: Node, *, clock: Callable[[], float] = time.monotonic,
             timeout_s: float = RUN_TIMEOUT_S) -> RunResult:
    """One drill run against the real cluster; never longer than ~timeout_s."""
    others = {m.port for m in cluster.members if m is not victim}
    time.sleep(SETTLE_S)
    try:  # a member missing before the fault would make "out" meaningless (0 s)
        wait_until(lambda: others | {victim.port} <= cluster.listed_ports(), "every member listed before the fault",
                   STEADY_TIMEOUT_S, POLL_S)
    except (AdminError, DrillError) as exc:
        return RunResult(scenario=scenario, member_port=victim.port, out_s=None, back_s=None, disturbed=False,
                         error=str(exc))
    start = clock()
    watch = RunWatch(victim.port, others, start)
    fault(scenario, victim)
    max_polls = int(timeout_s / POLL_S) + 1
    try:
        for _ in range(max_polls):
            if clock() - start > timeout_s:
                break
            watch.observe(clock(), cluster.listed_ports())
            if watch.phase == "recover":
                began = clock()  # back_s includes the restart itself (process start, listener up)
                recover(scenario, victim, timeout_s - (began - start))
                watch.recovered(began)
            elif watch.phase == "done":
                break
            else:
                time.sleep(POLL_S)
    except (AdminError, DrillError) as exc:
        return watch.result(scenario, error=str(exc))
    finally:
        if scenario == "stop":
            victim.signal(signal.SIGCONT)  # never leave a member stopped
    if watch.phase != "done":
        return watch.result(scenario, error=f"run not finished within {timeout_s:g} s (phase {watch.phase})")
    return watch.result(scenario)


def run_passed(r: RunResult, liveness_s: float) -> bool:
    return (r.error is None and not r.disturbed and r.out_s is not None and r.back_s is not None
            and r.out_s <= liveness_s + OUT_SLACK_S and r.back_s <= BACK_BOUND_S)


def passed(results: list[RunResult], liveness_s: float) -> bool:
    return bool(results) and all(run_passed(r, liveness_s) for r in results)


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    got = [v for v in values if v is not None]
    return (statistics.median(got), max(got)) if got else (None, None)


def summarize(results: list[RunResult], liveness_s: float) -> dict[str, dict]:
    """Per scenario (in SCENARIOS order): runs, failed, median/max out and back, disturbed, ok."""
    out: dict[str, dict] = {}
    for name in SCENARIOS:
        rs = [r for r in results if r.scenario == name]
        if not rs:
            continue
        med_out, max_out = _stats([r.out_s for r in rs])
        med_back, max_back = _stats([r.back_s for r in rs])
        out[name] = {"runs": len(rs), "failed": sum(not run_passed(r, liveness_s) for r in rs),
                     "median_out_s": med_out, "max_out_s": max_out,
                     "median_back_s": med_back, "max_back_s": max_back,
                     "disturbed": any(r.disturbed for r in rs), "ok": passed(rs, liveness_s)}
    return out


def table_rows(summary: dict[str, dict]) -> list[list]:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"
    return [[name, f"{d['runs']}" + (f" ({d['failed']} failed)" if d["failed"] else ""),
             s(d["median_out_s"]), s(d["max_out_s"]), s(d["median_back_s"]), s(d["max_back_s"]),
             "yes" if d["disturbed"] else "no"] for name, d in summary.items()]


TABLE_HEADERS = ["scenario", "runs", "median out s", "max out s", "median back s", "max back s",
                 "others disturbed"]


def result_dicts(results: list[RunResult]) -> list[dict]:
    return [asdict(r) for r in results]
