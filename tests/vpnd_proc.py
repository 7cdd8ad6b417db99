"""Run real `vpnd` processes for integration tests: on loopback, each with its
own state dir and free port, stopped by PID in teardown."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.vpndrill.cluster import DrillError, Node, free_port
from tools.vpndrill.lab.jsonrpc import rpc, rpc_raw

__all__ = ["Vpnd", "free_port", "rpc", "rpc_raw"]


class Vpnd(Node):
    """A vpnd for a test: vpndrill's `Node` (spawn, wait until it answers,
    stop by PID) named after its state dir, with the test password and the
    raw JSON-RPC and vpnctl helpers tests use. Start-up failures are
    DrillError with the whole log."""

    def __init__(self, state_dir: Path, port: int | None = None, password: str = "test-admin-pw") -> None:
        super().__init__(state_dir.name, state_dir, password, port=free_port() if port is None else port)

    def start(self, wait: bool = True) -> "Vpnd":
        """Start vpnd (and wait until it answers); if the chosen port was taken
        meanwhile (free_port() is only a hint), retry on another one."""
        if wait:
            super().start()
        else:
            self.spawn()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        try:
            super().wait_ready(timeout)
        except DrillError as e:
            raise DrillError(f"{e}\n{self.log()}") from None

    def call(self, method: str, params: dict[str, Any] | None = None, hub: str = "",
             password: str | None = None) -> dict[str, Any]:
        return rpc(self.port, self.password if password is None else password, method, params, hub)

    def vpnctl(self, *words: str, hub: str | None = None, hub_admin: bool = False, json_out: bool = False,
               password: str | None = None) -> subprocess.CompletedProcess:
        """Run the vpnctl CLI against this node as its operator would."""
        pw_file = self.state_dir.parent / f"{self.state_dir.name}.vpnctl.pw"
        pw_file.write_text((self.password if password is None else password) + "\n")
        cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{self.port}",
               "--password-file", str(pw_file)]
        cmd += ["--hub", hub] if hub else []
        cmd += ["--hub-admin"] if hub_admin else []
        cmd += ["--json"] if json_out else []
        return subprocess.run(cmd + list(words), capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parent.parent)

    def log(self) -> str:
        """The whole log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for(cond, what: str, timeout: float = 60.0):
    """cond()'s first true value, polled every 0.1 s; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
