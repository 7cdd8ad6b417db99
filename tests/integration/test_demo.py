"""The README's main job keeps working: `vpndrill demo`, without privileges
and (when we are root) in namespaces with TAP clients.

The demo runs with every capability dropped (setpriv: no CAP_NET_ADMIN, no
CAP_DAC_OVERRIDE, ...), i.e. with what a non-root user has; as nobody it
could not reach this machine's Python under /root. Its table shows the
OFFICE sessions spread by weight, a member is killed and every session
comes back, and every node is stopped."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.vpndrill.lab.nscluster import netns_capable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) missing: cannot drop root's capabilities")
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *argv]


def test_cluster_demo_without_privileges_spreads_by_weight_and_takes_over():
    result = subprocess.run(unprivileged([sys.executable, "-m", "tools.vpndrill.main", "demo"]), cwd=ROOT,
                            capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    member_rows = [line for line in out.splitlines() if "| Member " in line]
    assert len(member_rows) >= 2
    assert re.search(r"Number of Successful Connections \| [1-9]", out)
    assert "all nodes stopped (exit codes [0, 0, 0])" in out
    # 12 sessions through the controller, spread by weight 100/100/200: 3/3/6 (one session of tolerance)
    landed = dict(re.findall(r"^(controller|member1|member2)\s+\d+\s+(\d+)$", out, re.M))
    assert set(landed) == {"controller", "member1", "member2"}, out[-2000:]
    for name, want in (("controller", 3), ("member1", 3), ("member2", 6)):
        assert abs(int(landed[name]) - want) <= 1, landed
    # every session after the kill is connected somewhere, the killed member's with a gap
    after = re.findall(r"^(c\d{3})\s+(OFFICE|LAB)\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert len(after) == 14, out[-3000:]
    assert all(a[3] != "DOWN" for a in after), after
    moved = [a for a in after if a[2] != a[3]]
    assert moved and all(a[4] != "-" for a in moved), after
    assert "sessions lost: 0" in out


@pytest.mark.skipif(not netns_capable(), reason="needs root's capabilities and /dev/net/tun (namespaces, TAP)")
def test_cluster_demo_as_root_runs_in_namespaces_with_tap_clients_pinging_the_lans():
    result = subprocess.run([sys.executable, "-m", "tools.vpndrill.main", "demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("in network namespaces, as root")
    assert "--tap in its own namespace, pinging the LAN" in out
    assert "all nodes stopped (exit codes [0, 0, 0])" in out and "sessions lost: 0" in out
    # every ping window has answers: the LAN behind each server's local bridge answered the TAP clients
    windows = re.findall(r"^\s*[\d.]+\s+(?:kill|start)\s+member\d.*\s(\d+)/(\d+)$", out, re.M)
    assert len(windows) == 2, out[-2000:]
    for lost, sent in windows:
        assert int(sent) > 0 and int(lost) < int(sent), windows
