"""The README's main job: start a node, administer it with vpnctl exactly as
an operator would, print the status tables, stop the node.

Everything runs on 127.0.0.1 in a temporary state directory; the node is
stopped by PID (SIGTERM) whatever happens.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vpnctl(port: int, pw_file: Path, *args: str, hub: str | None = None, check: bool = True) -> None:
    cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{port}",
           "--password-file", str(pw_file)]
    if hub:
        cmd += ["--hub", hub]
    cmd += list(args)
    shown = "vpnctl " + " ".join(shlex.quote(a) for a in cmd[cmd.index("--server"):])
    print(f"\n$ {shown}", flush=True)
    result = subprocess.run(cmd, cwd=ROOT)
    if check and result.returncode != 0:
        raise SystemExit(f"demo: vpnctl failed with exit code {result.returncode}")


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: vpnd exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: vpnd did not start listening")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="vpncluster-demo-") as tmp:
        state_dir, pw_file = Path(tmp) / "node", Path(tmp) / "admin.pw"
        pw_file.write_text("demo-admin-password\n")
        os.chmod(pw_file, 0o600)
        port = _free_port()
        print(f"$ vpnd --state-dir {state_dir} --listen 127.0.0.1:{port} --admin-password-file {pw_file}")
        proc = subprocess.Popen([sys.executable, "-m", "node.daemon", "--state-dir", str(state_dir),
                                 "--listen", f"127.0.0.1:{port}", "--admin-password-file", str(pw_file),
                                 "--log-level", "WARNING"], cwd=ROOT)
        try:
            _wait_port(port, proc)
            _vpnctl(port, pw_file, "ServerInfoGet")
            _vpnctl(port, pw_file, "HubCreate", "DEMO", "/PASSWORD:demo-hub-password")
            _vpnctl(port, pw_file, "UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice Example",
                    "/NOTE:demo user", hub="DEMO")
            _vpnctl(port, pw_file, "UserPasswordSet", "alice", "/PASSWORD:alice-secret", hub="DEMO")
            _vpnctl(port, pw_file, "HubList")
            _vpnctl(port, pw_file, "UserList", hub="DEMO")
            _vpnctl(port, pw_file, "ServerStatusGet")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        print(f"\nvpnd stopped (exit code {proc.returncode}).")
        return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
