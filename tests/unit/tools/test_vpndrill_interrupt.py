"""Ctrl-C and SIGTERM stop a drill wherever the signal lands, also inside an
asyncio callback or task, where asyncio logs and drops most exceptions (the
drill then ran on with further signals ignored, and had to be killed)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# The signal is sent from inside a loop callback or a task nobody awaits, so
# the handler runs there; the loop must stop and main() report it.
DRILL = """
import asyncio, os, signal, sys
from tools.vpndrill import main as vpndrill

async def drill(where):
    loop = asyncio.get_running_loop()
    def hit():
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    if where == "callback":
        loop.call_soon(hit)
    else:
        async def step():
            hit()
        asyncio.ensure_future(step())
    await asyncio.sleep(10)
    return 0

vpndrill.drill_local = lambda args: asyncio.run(drill(sys.argv[1]))
sys.exit(vpndrill.main(["local"]))
"""


@pytest.mark.parametrize("where", ["callback", "task"])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_inside_the_event_loop_stops_the_drill(where, sig):
    res = subprocess.run([sys.executable, "-c", DRILL, where, sig], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 130, res.stderr
    assert f"interrupted by {sig}" in res.stderr and "Traceback" not in res.stderr
