"""Run real `vpnd` processes for integration tests: on loopback, each with its
own state dir and free port, stopped by PID in teardown."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def rpc_raw(port: int, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, bytes]:
    """POST /api/ and return (HTTP status, body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=_insecure_context())
    try:
        conn.request("POST", "/api/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def rpc(port: int, password: str, method: str, params: dict[str, Any] | None = None,
        hub: str = "") -> dict[str, Any]:
    """One JSON-RPC call; returns the decoded document (result or error)."""
    body = json.dumps({"jsonrpc": "2.0", "id": "t", "method": method, "params": params or {}}).encode()
    status, data = rpc_raw(port, body, {"X-VPNADMIN-PASSWORD": password, "X-VPNADMIN-HUBNAME": hub})
    if status != 200:
        return {"http_status": status}
    return json.loads(data)


@dataclass
class Vpnd:
    state_dir: Path
    port: int = field(default_factory=free_port)
    password: str = "test-admin-pw"
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    def start(self, wait: bool = True) -> "Vpnd":
        """Start vpnd; if the chosen port was taken meanwhile (free_port() is
        only a hint), retry on another one."""
        for _ in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except RuntimeError:
                if self.proc.poll() is None or "cannot listen" not in self.log():
                    raise
                self.port = free_port()
        raise RuntimeError(f"vpnd could not find a free port:\n{self.log()}")

    def _spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pw_file = self.state_dir.parent / f"{self.state_dir.name}.pw"
        pw_file.write_text(self.password + "\n")
        self.log_path = self.state_dir.parent / f"{self.state_dir.name}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.daemon", "--state-dir", str(self.state_dir),
             "--listen", f"127.0.0.1:{self.port}", "--admin-password-file", str(pw_file),
             *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
        log.close()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"vpnd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                doc = rpc(self.port, self.password, "Test", {"IntValue_u32": 1}, )
                if "result" in doc:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"vpnd not ready in {timeout}s:\n{self.log()}")

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
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in 10 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode
