"""The README's main job: a local cluster on loopback, administered with
vpnctl exactly as an operator would.

It starts three vpnd nodes (one becomes the cluster controller, two join as
members, one of them with weight 200), creates a static Virtual Hub and a user
on the controller, waits until both members show in ClusterMemberList with
their points and hold the hub, then connects a dozen VPN sessions (userspace
vpnclients) to the controller, which spreads them over the three servers by
points and weight with ticket redirects, shows where each landed and the
tables an operator watches, and stops every client and node by PID
(SIGTERM) whatever happens. Everything runs on 127.0.0.1 in a temporary
directory.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from tools.vpnclient.client import UserspaceClient
from tools.vpnclient.retry import RetryPolicy

from tools.vpndrill.cluster import REPO_ROOT as ROOT, DrillError, Node as Vpnd, wait_until

PASSWORD = "demo-admin-password"
WAIT_S = 30.0
SESSIONS = 12


class Node(Vpnd):
    """One vpnd of the demo, started, checked and stopped by PID with
    vpndrill's code (its log: <tmp>/<name>.log), administered with vpnctl."""

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


async def connect_sessions(ctl: Node, nodes: list[Node], count: int, show: Callable[[], object]) -> Counter[int]:
    """`count` VPN sessions of alice through the controller, one after the
    other; `show()` runs while they are up. Returns sessions per server port."""
    clients = [UserspaceClient(f"127.0.0.1:{ctl.port}", "OFFICE", "alice", "alice-secret",
                               retry=RetryPolicy(max_retries=5)) for _ in range(count)]
    print(f"\n$ {count} x vpnclient --server 127.0.0.1:{ctl.port} --hub OFFICE --user alice --userspace")
    try:
        for c in clients:
            c.start()
            await c.wait_connected(WAIT_S)
        landed = Counter(int((c.status.server or ":0").rsplit(":", 1)[1]) for c in clients)
        await asyncio.to_thread(show)
        return landed
    finally:
        for c in clients:
            await c.stop()


def main() -> int:
    nodes: list[Node] = []
    with tempfile.TemporaryDirectory(prefix="vpncluster-demo-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for name in ("controller", "member1", "member2"):
                node = Node(name, tmp / name, PASSWORD)
                nodes.append(node)  # before start: a node that does not answer is still stopped
                print(f"$ vpnd --state-dir {node.state_dir} --listen 127.0.0.1:{node.port} "
                      f"--admin-password-file {node.pw_file} &")
                node.start(WAIT_S)
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
            wait_until(members_listed, "both members joining with the static hub", WAIT_S, 0.2)
            ctl.vpnctl("ClusterMemberList")
            ctl.vpnctl("HubList")
            m2.vpnctl("ClusterConnectionStatusGet")
            m2.vpnctl("HubList")
            m2.vpnctl("UserList", hub="OFFICE")
            landed = asyncio.run(connect_sessions(ctl, nodes, SESSIONS, lambda: (
                ctl.vpnctl("ClusterMemberList"),
                m2.vpnctl("SessionList", hub="OFFICE"),
                ctl.vpnctl("ServerStatusGet"))))
            print("\nwhere the sessions landed (weights: controller 100, member1 100, member2 200):")
            print(tabulate([(n.name, n.port, landed.get(n.port, 0)) for n in nodes],
                           headers=("server", "port", "sessions")))
        except DrillError as e:  # a vpnd did not start, or the members did not join in time
            raise SystemExit(f"demo: {e}") from None
        finally:
            # By PID: SIGTERM, SIGKILL after 10 s, so the demo never leaves a vpnd behind.
            codes = [node.stop() for node in nodes]
        print(f"\nall nodes stopped (exit codes {codes}).")
        return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
