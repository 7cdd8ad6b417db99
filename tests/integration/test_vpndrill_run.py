"""`vpndrill run` and `vpndrill observe` driven from the command line, as an
operator would: the shipped crash scenario, the rolling restart through
drain, a broken scenario file, and observing a member die on a cluster
someone else runs. (Ctrl-C in the middle of a scenario: test_vpndrill.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy
from tools.vpndrill.cluster import LocalCluster, wait_until
from tools.vpndrill.drill import MEMBER_POLL_S

from tests.integration.test_vpndrill import alive

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parent.parent.parent
SCENARIOS = REPO / "tools" / "vpndrill" / "scenarios"
ADMIN_CALL_MARGIN_S = 0.5
"""A member-list poll is an admin call, which can take this long on a loaded 2-core machine."""


def drill(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.vpndrill.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def report_of(res: subprocess.CompletedProcess) -> dict:
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        pytest.fail(f"not JSON (exit {res.returncode}): {res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    leftover = [pid for pid in doc.get("pids", []) if alive(pid)]
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"processes left running: {leftover}"
    return doc


def test_crash_scenario_detects_within_liveness_and_loses_no_session(tmp_path: Path):
    png = tmp_path / "crash.png"
    res = drill("run", str(SCENARIOS / "member-crash.toml"), "--json", "--plot", str(png))
    doc = report_of(res)
    assert res.returncode == 0, res.stderr[-2000:]
    kill = next(e for e in doc["events"] if e["action"] == "kill")
    assert kill["target"] == "member2" and kill["affected"] >= 1
    liveness = 2.0  # member-crash.toml
    assert 0 < kill["detection_s"] <= liveness + MEMBER_POLL_S + ADMIN_CALL_MARGIN_S, kill
    assert kill["lost"] == 0 and len(kill["gaps_s"]) == kill["affected"]
    assert doc["sessions_lost"] == 0 and doc["sessions_back"] == kill["affected"]
    assert doc["connected_at_end"] == doc["sessions"] == 12
    start = next(e for e in doc["events"] if e["action"] == "start")
    assert start["listed_s"] is not None  # the member rejoined
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def drain_available() -> bool:
    return any("ClusterMemberDrain" in p.read_text() for p in (REPO / "node" / "admin").glob("*.py"))


@pytest.mark.skipif(not drain_available(), reason="needs the controller's ClusterMemberDrain (graceful drain)")
def test_rolling_restart_through_drain_loses_no_session():
    res = drill("run", str(SCENARIOS / "rolling-restart-drain.toml"), "--json", timeout=170)
    doc = report_of(res)
    assert res.returncode == 0, (doc["failures"], res.stderr[-2000:])
    drains = [e for e in doc["events"] if e["action"] == "drain"]
    assert [e["target"] for e in drains] == ["member1", "member2"]
    assert all(e["lost"] == 0 for e in doc["events"])
    assert doc["sessions_lost"] == 0 and doc["connected_at_end"] == 12


def test_a_broken_scenario_gets_one_error_with_its_line(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text((SCENARIOS / "member-crash.toml").read_text().replace('target = "member2"', 'target = "member9"', 1))
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "member9" in text)
    res = drill("run", str(bad), timeout=30)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"vpndrill: {bad}:{line}: step.target: no server named 'member9' (one of busiest, controller, last, "
        "member1, member2)"]
    bad.write_text("name = 'x'\n[[member]\n")
    res = drill("run", str(bad), timeout=30)
    assert res.returncode == 2 and f"{bad}:2: not valid TOML" in res.stderr and "Traceback" not in res.stderr
    # a link fault on one loopback cannot be applied: said before anything starts, with the step's line
    link = SCENARIOS / "link-down.toml"
    line = next(i for i, text in enumerate(link.read_text().splitlines(), 1) if text == "[[step]]")
    res = drill("run", str(link), timeout=30)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"vpndrill: {link}: the step at line {line} (link_down) needs a link per server: run it with --netns (root)"]


def ctl_call(cluster: LocalCluster, method: str, params: dict) -> dict:
    with cluster.controller.client() as c:
        return c.call(method, params)


def id_of(cluster: LocalCluster, node) -> int:
    """The controller's member id of `node` (by its port)."""
    for row in ctl_call(cluster, "EnumFarmMember", {})["FarmMemberList"]:
        if not row["Controller_bool"] and node.port in ctl_call(cluster, "GetFarmInfo", {"Id_u32": row["Id_u32"]})[
                "Ports_u32"]:
            return int(row["Id_u32"])
    raise AssertionError(f"{node.name} not listed")


def test_observe_records_a_member_death_and_a_drain_on_a_running_cluster(tmp_path: Path):
    with LocalCluster(tmp_path, members=2, liveness_s=2.0) as cluster:
        cluster.start()
        with cluster.controller.client() as c:
            c.call("CreateHub", {"HubName_str": "OBS", "Online_bool": True, "HubType_u32": 1})
            c.call("CreateUser", {"HubName_str": "OBS", "Name_str": "eve", "AuthType_u32": 1,
                                  "Auth_Password_str": "eve-pw"})
        pw = tmp_path / "ctl.pw"
        pw.write_text(cluster.controller.password + "\n")
        victim, survivor = cluster.members[1], cluster.members[0]

        async def clients_then_kill() -> tuple[int, int]:
            retry = RetryPolicy(max_retries=100, base_s=0.1, cap_s=0.5)
            cs = [UserspaceClient(f"127.0.0.1:{cluster.controller.port}", "OBS", "eve", "eve-pw", retry=retry)
                  for _ in range(6)]
            try:
                for c in cs:
                    await c.wait_connected(30)
                on_victim = sum(c.status.server == f"127.0.0.1:{victim.port}" for c in cs)
                observer = subprocess.Popen(
                    [sys.executable, "-m", "tools.vpndrill.main", "observe", "--server",
                     f"127.0.0.1:{cluster.controller.port}", "--password-file", str(pw), "--for", "14", "--json"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                try:
                    await asyncio.sleep(2.5)
                    victim.kill()
                    if drain_available():  # then drain and undrain the member left
                        await asyncio.sleep(4)
                        member_id = await asyncio.to_thread(id_of, cluster, survivor)
                        await asyncio.to_thread(ctl_call, cluster, "ClusterMemberDrain", {"Id_u32": member_id})
                        await asyncio.sleep(2)
                        await asyncio.to_thread(ctl_call, cluster, "ClusterMemberUndrain", {"Id_u32": member_id})
                    out, err = await asyncio.to_thread(observer.communicate, timeout=60)
                finally:
                    if observer.poll() is None:
                        observer.kill()
                        observer.wait(10)
                assert observer.returncode == 0, err[-2000:]
                doc = json.loads(out)
                left = [e for e in doc["events"] if e["action"] == "left"]
                assert [e["target"] for e in left] == [f"127.0.0.1:{victim.port}"], doc["events"]
                assert left[0]["affected"] == on_victim
                assert len(left[0]["gaps_s"]) == on_victim and left[0]["lost"] == 0, left[0]
                assert doc["sessions"] == 6 and doc["connected_at_end"] == 6 and doc["sessions_lost"] == 0
                moved_by_drain = 0  # sessions back counts each client once, however often it moved
                if drain_available():
                    mine = [e for e in doc["events"] if e["target"] == f"127.0.0.1:{survivor.port}"]
                    states = [e["action"] for e in mine]
                    assert states[0] in ("draining", "drained") and states[-1] == "undrained", doc["events"]
                    moved_by_drain = sum(len(e["gaps_s"]) for e in mine)
                    assert all(e["lost"] == 0 for e in mine), mine
                assert on_victim <= doc["sessions_back"] <= on_victim + moved_by_drain, doc
                return on_victim, len(left[0]["gaps_s"])
            finally:
                for c in cs:
                    await c.stop()

        for m in cluster.members:
            wait_until(lambda m=m: "OBS" in {h["HubName_str"] for h in m.client().call("EnumHub")["HubList"]},
                       f"{m.name}: hub", 30)
        on_victim, back = asyncio.run(clients_then_kill())
        assert on_victim >= 1 and back == on_victim
