"""A vpnd process inside a network namespace a test or benchmark created: vpndrill's `Node`
(start, wait until it answers, stop by PID: SIGCONT, SIGTERM, then SIGKILL)
started with `ip netns exec` through the lab, which also kills it at
teardown. Administered with JSON-RPC calls and `vpnctl` subprocesses made in
the same namespace (as an operator would)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.vpndrill.cluster import REPO_ROOT, DrillError, Node
from tools.vpndrill.lab.jsonrpc import rpc
from tools.vpndrill.lab.netns import Lab
from tools.vpndrill.lab.softether import LabError, in_netns

__all__ = ["NsVpnd", "ROOT", "WAIT_S", "vpnd_in", "wait_for"]

ROOT = REPO_ROOT
PASSWORD = "ns-admin-pw"
PORT = 5555          # inside the test's own namespace: always free
WAIT_S = 20.0


class NsVpnd(Node):
    """A vpnd process inside namespace `ns` listening on `hosts` (127.0.0.1
    among them) at `port`; state dir, password file and log in `tmp`
    (vpnd, vpnd.pw, vpnd.log)."""

    def __init__(self, lab: Lab, ns: str, tmp: Path, *, hosts: tuple[str, ...] = ("127.0.0.1",),
                 port: int = PORT, password: str = PASSWORD) -> None:
        super().__init__("vpnd", tmp / "vpnd", password, port=port, hosts=hosts)
        self.lab, self.ns, self.tmp = lab, ns, tmp

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        # `ip netns exec` execs vpnd itself, so the PID is vpnd's; the lab
        # starts it in its own session and kills it at teardown
        return self.lab.popen(self.ns, argv, **kwargs)

    def wait_ready(self, timeout_s: float = WAIT_S) -> None:
        try:
            in_netns(self.ns, lambda: Node.wait_ready(self, timeout_s), timeout_s + 10)
        except DrillError as e:
            raise DrillError(f"{e}\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON-RPC call from inside the namespace: the document (result or error)."""
        return in_netns(self.ns, lambda: rpc(self.port, self.password, method, params or {}))

    def ok(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """call() that raises LabError unless the server answered with a result."""
        doc = self.call(method, params)
        if "result" not in doc:
            raise LabError(f"{method}: {doc}\n{self.log()}")
        return doc["result"]

    def vpnctl(self, *words: str, hub: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{self.port}",
                "--password-file", str(self.pw_file), "--connect-timeout", "2", "--timeout", "10"]
        if hub:
            argv += ["--hub", hub]
        done = subprocess.run(self.lab.argv(self.ns, [*argv, *words]), capture_output=True, text=True,
                              timeout=30, cwd=ROOT)
        if check and done.returncode != 0:
            raise LabError(f"vpnctl {words}: {done.stdout}{done.stderr}\n{self.log()}")
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
            if time.monotonic() >= deadline:
                raise LabError(f"bridges not active: {rows}\n{self.log()}")
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
    """Poll `probe()` every 0.1 s until it returns something true; return it
    (LabError after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(f"timed out waiting for {what}\n{log or ''}")
        time.sleep(0.1)
