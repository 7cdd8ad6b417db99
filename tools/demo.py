"""The README's main job: a local cluster on loopback, administered with
vpnctl exactly as an operator would.

It starts three vpnd nodes (one becomes the cluster controller, two join as
members, one of them with weight 200), creates a static Virtual Hub and a user
on the controller, waits until both members show in ClusterMemberList with
their points and hold the hub, prints the tables an operator watches, and
stops every node by PID (SIGTERM) whatever happens. Everything runs on
127.0.0.1 in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-admin-password"
WAIT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    port: int
    pw_file: Path
    proc: subprocess.Popen

    def vpnctl(self, *args: str, hub: str | None = None, show: bool = True, json_out: bool = False) -> str:
        cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", f"127.0.0.1:{self.port}",
               "--password-file", str(self.pw_file)]
        cmd += ["--hub", hub] if hub else []
        cmd += ["--json"] if json_out else []
        cmd += list(args)
        if show:
            print(f"\n[{self.name}] $ vpnctl " + " ".join(shlex.quote(a) for a in cmd[cmd.index("--server"):]),
                  flush=True)
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SystemExit(f"demo: vpnctl failed ({result.returncode}): {result.stderr.strip()}")
        if show:
            print(result.stdout, end="", flush=True)
        return result.stdout


def _start(name: str, tmp: Path, pw_file: Path) -> Node:
    port = _free_port()
    state_dir = tmp / name
    print(f"$ vpnd --state-dir {state_dir} --listen 127.0.0.1:{port} --admin-password-file {pw_file} &")
    proc = subprocess.Popen([sys.executable, "-m", "node.daemon", "--state-dir", str(state_dir),
                             "--listen", f"127.0.0.1:{port}", "--admin-password-file", str(pw_file),
                             "--log-level", "WARNING"], cwd=ROOT)
    deadline = time.monotonic() + WAIT_S
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"demo: vpnd {name} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return Node(name, port, pw_file, proc)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: vpnd {name} did not start listening") from None
            time.sleep(0.1)


def _wait(what: str, check) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not happen within {WAIT_S:.0f} s")
        time.sleep(0.2)


def _reap(node: Node) -> int | None:
    """The exit code after SIGTERM; a node still running after 20 s is killed
    (SIGKILL, by PID) so that the demo never leaves a vpnd behind."""
    try:
        return node.proc.wait(20)
    except subprocess.TimeoutExpired:
        print(f"demo: vpnd {node.name} did not stop on SIGTERM; killing it", file=sys.stderr)
        node.proc.kill()
        node.proc.wait(10)
        return None


def main() -> int:
    nodes: list[Node] = []
    with tempfile.TemporaryDirectory(prefix="vpncluster-demo-") as tmp_name:
        tmp = Path(tmp_name)
        pw_file = tmp / "admin.pw"
        pw_file.write_text(PASSWORD + "\n")
        os.chmod(pw_file, 0o600)
        try:
            for name in ("controller", "member1", "member2"):
                nodes.append(_start(name, tmp, pw_file))
            ctl, m1, m2 = nodes
            ctl.vpnctl("ClusterSettingController", "/WEIGHT:100", "/ONLY:no")
            for member, weight in ((m1, 100), (m2, 200)):
                member.vpnctl("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1",
                              f"/PORTS:{member.port}", f"/PASSWORD:{PASSWORD}", f"/WEIGHT:{weight}")
            ctl.vpnctl("HubCreateStatic", "OFFICE", "/PASSWORD:office-hub-password")
            ctl.vpnctl("UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice Example", "/NOTE:demo user",
                       hub="OFFICE")
            ctl.vpnctl("UserPasswordSet", "alice", "/PASSWORD:alice-secret", hub="OFFICE")

            def members_listed() -> bool:
                rows = json.loads(ctl.vpnctl("ClusterMemberList", show=False, json_out=True))["FarmMemberList"]
                return sum(not r["Controller_bool"] and r["NumHubs_u32"] >= 1 for r in rows) == 2
            _wait("both members joining with the static hub", members_listed)
            ctl.vpnctl("ClusterMemberList")
            ctl.vpnctl("HubList")
            m2.vpnctl("ClusterConnectionStatusGet")
            m2.vpnctl("HubList")
            m2.vpnctl("UserList", hub="OFFICE")
            ctl.vpnctl("ServerStatusGet")
        finally:
            for node in nodes:
                node.proc.send_signal(signal.SIGTERM)
            codes = [_reap(node) for node in nodes]
        print(f"\nall nodes stopped (exit codes {codes}).")
        return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
