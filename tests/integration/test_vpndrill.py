"""vpndrill end to end: a local 2-member cluster, every scenario once, JSON
report; every vpnd it started (the PIDs it reports) is gone afterwards.
Times are checked for sanity (present, non-negative, the tool's own
pass/fail), never against a figure of our own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.vpndrill.scenarios import RunResult, RunWatch, passed, run_passed, summarize

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent.parent


def alive(pid: int) -> bool:
    """True if `pid` still exists as a process that is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def run_drill(*args: str, timeout: float = 100) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.vpndrill.main", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_all_scenarios_json_and_no_process_left():
    res = run_drill("local", "--members", "2", "--scenario", "all", "--runs", "1", "--json")
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        pytest.fail(f"not JSON (exit {res.returncode}): {res.stdout!r}\n{res.stderr}")
    leftover = [pid for pid in doc["pids"] if alive(pid)]
    for pid in leftover:  # do not leave them to the next test run either
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"vpnd processes left running: {leftover}"
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert doc["ok"] is True and doc["error"] is None
    # controller + 2 members + the kill and restart runs' new processes
    assert len(doc["pids"]) == 5 and len(set(doc["pids"])) == 5
    assert set(doc["scenarios"]) == {"kill", "stop", "restart"}
    for name, s in doc["scenarios"].items():
        assert s["runs"] == 1 and s["failed"] == 0 and s["ok"] is True and s["disturbed"] is False, name
        assert 0 <= s["median_out_s"] <= s["max_out_s"] <= doc["liveness_s"] + 1.0, name
        assert 0 <= s["median_back_s"] <= s["max_back_s"] <= 15.0, name
    assert [r["scenario"] for r in doc["runs"]] == ["kill", "stop", "restart"]
    # round robin: consecutive runs hit different members
    ports = [r["member_port"] for r in doc["runs"]]
    assert ports[0] != ports[1] and ports[1] != ports[2]


@pytest.mark.parametrize("args", [["local", "--members", "0"], ["local", "--scenario", "flood"],
                                  ["local", "--runs", "x"], ["remote"], ["local", "--liveness", "0.01"]])
def test_usage_errors_exit_2_in_one_line(args):
    res = run_drill(*args, timeout=30)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.strip().splitlines()[-1].startswith("vpndrill")


def test_sigterm_stops_every_node(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tools.vpndrill.main", "local", "--members", "1",
                             "--scenario", "stop", "--runs", "3", "--log-level", "INFO"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 40
        for line in proc.stderr:  # wait until the cluster is up, collecting the PIDs from the log
            if "started pid" in line:
                pids.append(int(line.split("started pid")[1].split()[0]))
            if "cluster up" in line or time.monotonic() > deadline:
                break
        assert len(pids) == 2, pids
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    leftover = [pid for pid in pids if alive(pid)]
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted by SIGTERM" in err


def test_watch_times_out_and_back_and_sees_a_missing_other_member():
    w = RunWatch(victim=1, others={2, 3}, fault_at=100.0)
    w.observe(100.5, {1, 2, 3})
    assert w.phase == "out"
    w.observe(103.2, {2, 3})
    assert w.phase == "recover" and w.out_s == pytest.approx(3.2)
    w.observe(103.3, {2})
    assert w.disturbed  # 3 was missing at 103.3
    with pytest.raises(ValueError):  # recovering a member that never left is the driver's bug
        RunWatch(victim=1, others=set(), fault_at=0.0).recovered(1.0)
    w.recovered(104.0)
    w.observe(104.5, {2, 3})
    w.observe(105.0, {1, 2, 3})
    r = w.result("kill")
    assert r.error is None and r.back_s == pytest.approx(1.0) and r.disturbed


def test_unfinished_watch_is_an_error():
    w = RunWatch(victim=1, others=set(), fault_at=0.0)
    w.observe(1.0, {1})
    assert w.result("stop").error == "unfinished in phase 'out'"


def test_bounds_and_summary():
    def r(out, back, **kw):
        return RunResult(scenario="kill", member_port=1, out_s=out, back_s=back, disturbed=False, **kw)
    good, slow_out, slow_back = r(2.9, 0.5), r(4.1, 0.5), r(2.9, 15.5)
    assert run_passed(good, 3.0) and not run_passed(slow_out, 3.0) and not run_passed(slow_back, 3.0)
    assert not run_passed(r(None, None, error="timeout"), 3.0)
    assert not passed([], 3.0)
    s = summarize([good, r(3.1, 0.7), slow_out], 3.0)["kill"]
    assert s["runs"] == 3 and s["failed"] == 1 and not s["ok"]
    assert s["median_out_s"] == pytest.approx(3.1) and s["max_out_s"] == pytest.approx(4.1)
    assert s["median_back_s"] == pytest.approx(0.5) and s["max_back_s"] == pytest.approx(0.7)
