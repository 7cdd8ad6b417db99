"""tools/vpndrill/scenarios.py without processes: RunWatch's phases and timing,
a run's bounds and the summary. (The drill end to end: tests/integration/test_vpndrill.py.)"""

from __future__ import annotations

import pytest

from tools.vpndrill.scenarios import RunResult, RunWatch, passed, run_passed, summarize


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
