"""Takeover with a real TAP client: our vpnclient (--tap) in its own
namespace, pointed at the CONTROLLER of a controller + 3 member cluster
(tests/netns/cluster_lab.py), pings the LAN host behind every member's local
bridge while its member is, in turn,

1. killed (kill -9),
2. frozen (SIGSTOP; thawed with SIGCONT once the client has left it, and in
   a finally), then
3. cut off (its port on the WAN bridge set down).

Each time the pings must resume, through a member other than the one it
was on (A -> B -> C -> B: by step 3 A is dead and the thawed B has rejoined,
so B is the only healthy member left). The nodes run with
VPNCLUSTER_LIVENESS_S=2 so the controller evicts a frozen or cut-off member
after 2 s instead of 3 s; the client itself notices a frozen or cut-off
member by the 5 s session timeout the cluster's welcome gives. The longest
ping gap of each step is printed, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.netns.cluster_lab import HUB, LAN_HOST, LAN_PREFIX, USERS, ClusterLab, Member, PingStream
from tests.netns.lab import requires_root
from tools.vpndrill.lab.nsvpnd import PORT, ROOT

pytestmark = [*requires_root, pytest.mark.timeout(180)]

RESUME_S = 45.0
ANSWERS = 10   # 1 s of answers at 0.1 s: traffic flows, not one lucky probe


def start_tap_client(cl: ClusterLab, user: str) -> Path:
    """`vpnclient connect --tap` in the client namespace, to the controller; returns its status file."""
    pw = cl.tmp / f"{user}.pw"
    pw.write_text(USERS[user] + "\n")
    status = cl.tmp / f"{user}.status.json"
    with open(cl.tmp / f"{user}.log", "wb") as log:
        cl.lab.popen(cl.ns_cli, [sys.executable, "-m", "tools.vpnclient.main", "connect",
                                 "--server", f"{cl.controller.hosts[0]}:{PORT}", "--hub", HUB, "--user", user,
                                 "--password-file", str(pw), "--tap", cl.lab.ifname("t"),
                                 "--ip", f"{LAN_PREFIX}.100/24", "--status-file", str(status), "-v"],
                     cwd=ROOT, stdout=log, stderr=log)
    return status


def read_status(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {}


def wait_on_member(cl: ClusterLab, status: Path, *, not_on: Member | None = None, reconnects: int = 0,
                   ping: PingStream | None = None, after: float = 0.0) -> tuple[Member, dict]:
    """Wait until the client is connected (at least `reconnects` times) to a
    member other than `not_on` and, with `ping`, ANSWERS probes sent after
    `after` were answered. Returns the member and the status record."""
    deadline = time.monotonic() + RESUME_S
    doc: dict = {}
    while time.monotonic() < deadline:
        doc = read_status(status)
        if doc.get("state") == "connected" and doc.get("reconnects", 0) >= reconnects:
            member = cl.member_at(doc["server"])
            if member is not not_on and (ping is None or ping.answered_after(after, ANSWERS)):
                return member, doc
        time.sleep(0.1)
    client_log = (status.parent / "alice.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"the client did not come back on another member than "
                         f"{not_on.name if not_on else '-'}: {doc}\nclient log:\n{client_log}\n{cl.logs()}")


def test_tap_client_survives_kill_freeze_and_cut_of_its_member(lab, tmp_path):
    cl = ClusterLab(lab, tmp_path)
    cl.start()
    status = start_tap_client(cl, "alice")
    first, doc = wait_on_member(cl, status)
    assert doc["redirected"], doc
    visited = [first]
    gaps: dict[str, float] = {}
    frozen: Member | None = None

    def step(name: str, act) -> None:
        on = visited[-1]
        ping = PingStream(lab, cl.ns_cli, LAN_HOST, tmp_path / f"ping-{name}.txt")
        try:
            wait_on_member(cl, status, ping=ping, after=ping.started)  # traffic flows before the event
            reconnects = read_status(status)["reconnects"]
            at = time.time()
            act(on)
            print(f"\n{name} {on.name} at +{at - ping.started:.2f} s of its ping stream")
            member, _ = wait_on_member(cl, status, not_on=on, reconnects=reconnects + 1, ping=ping, after=at)
        finally:
            report = ping.stop()
        visited.append(member)
        gaps[name] = report.longest_gap_s
        print(f"\n{name}: {on.name} -> {member.name}, longest ping gap {report.longest_gap_s:.2f} s "
              f"({report.answered} answers, {ping.lost()} lost)")

    try:
        step("kill", lambda m: m.node.kill())

        def freeze(m: Member) -> None:
            nonlocal frozen
            frozen = m
            m.node.signal(signal.SIGSTOP)
        step("freeze", freeze)
        assert frozen is not None
        frozen.node.signal(signal.SIGCONT)
        healthy = [m for m in cl.members if m is not first]
        cl.wait_listed(healthy, exactly=True)   # the thawed member is back, the killed one is gone

        step("cut", cl.cut)
    finally:
        if frozen is not None:
            frozen.node.signal(signal.SIGCONT)
    names = [m.name for m in visited]
    print(f"members visited: {' -> '.join(names)}; gaps: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in gaps.items()))
    assert all(a is not b for a, b in zip(visited, visited[1:])), names
    assert len({m.name for m in visited[:3]}) == 3, names   # kill and freeze each moved it to a new member
