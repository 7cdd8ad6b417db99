"""The README's main job keeps working: the local cluster demo."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_demo_runs_and_stops_every_node():
    result = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Cluster Controller" in out
    member_rows = [line for line in out.splitlines() if "| Member " in line]
    assert len(member_rows) >= 2
    # at least one join (a member that lost the controller under load rejoins: 2)
    assert re.search(r"Number of Successful Connections \| [1-9]", out)
    assert "all nodes stopped (exit codes [0, 0, 0])" in out
    # 12 sessions through the controller, spread by weight 100/100/200: 3/3/6 (one session of tolerance)
    landed = dict(re.findall(r"^(controller|member1|member2)\s+\d+\s+(\d+)$", out, re.M))
    assert set(landed) == {"controller", "member1", "member2"}, out[-2000:]
    for name, want in (("controller", 3), ("member1", 3), ("member2", 6)):
        assert abs(int(landed[name]) - want) <= 1, landed
