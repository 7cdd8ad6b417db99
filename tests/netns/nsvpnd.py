"""A vpnd process inside a test's own network namespace, administered with
`vpnctl` subprocesses run in the same namespace (as an operator would).
Stopped by its PID: SIGTERM, then SIGKILL; the lab kills it too at teardown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.netns.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "ns-admin-pw"
PORT = 5555          # inside the test's own namespace: always free
WAIT_S = 20.0


class NsVpnd:
    """A vpnd process inside namespace `ns`, with vpnctl run in the same one."""

    def __init__(self, lab: Lab, ns: str, tmp: Path) -> None:
        self.lab, self.ns, self.tmp = lab, ns, tmp
        self.state_dir = tmp / "state"
        self.pw_file = tmp / "admin.pw"
        self.pw_file.write_text(PASSWORD + "\n")
        self.log_path = tmp / "vpnd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # `ip netns exec` execs vpnd itself, so proc.pid is vpnd's PID
            self.proc = self.lab.popen(self.ns, [
                sys.executable, "-m", "node.daemon", "--state-dir", str(self.state_dir),
                "--listen", f"127.0.0.1:{PORT}", "--admin-password-file", str(self.pw_file)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"vpnd exited:\n{self.log()}"
            if self.vpnctl("ServerInfoGet", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"vpnd not ready:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def vpnctl(self, *words: str, hub: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{PORT}",
                "--password-file", str(self.pw_file), "--connect-timeout", "2", "--timeout", "10"]
        if hub:
            argv += ["--hub", hub]
        done = subprocess.run(self.lab.argv(self.ns, [*argv, *words]), capture_output=True, text=True,
                              timeout=30, cwd=ROOT)
        if check:
            assert done.returncode == 0, f"vpnctl {words}: {done.stdout}{done.stderr}\n{self.log()}"
        return done

    def json(self, *words: str, hub: str | None = None) -> dict:
        return json.loads(self.vpnctl("--json", *words, hub=hub).stdout)

    def bridges(self) -> dict[str, dict]:
        return {b["DeviceName_str"]: b for b in self.json("BridgeList").get("LocalBridgeList", [])}

    def wait_active(self, devices: list[str]) -> dict[str, dict]:
        deadline = time.monotonic() + WAIT_S
        while True:
            rows = self.bridges()
            if all(rows.get(d, {}).get("Active_bool") for d in devices):
                return rows
            assert time.monotonic() < deadline, f"bridges not active: {rows}\n{self.log()}"
            time.sleep(0.1)


@contextlib.contextmanager
def vpnd_in(lab: Lab, ns: str, tmp: Path):
    node = NsVpnd(lab, ns, tmp)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def wait_for(probe, what: str, timeout_s: float = WAIT_S, log: str | None = None):
    """Poll `probe()` every 0.1 s until it returns something true; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log or ''}"
        time.sleep(0.1)


def stop_pid(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGTERM the process we started (by its PID), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
