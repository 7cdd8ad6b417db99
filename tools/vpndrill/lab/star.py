"""The namespaces of one VPN server and two hosts (`VpnStar`), for the
tests (tests/netns/test_vpnclient_tap.py) and bench/throughput.py.

Topology:

    ns A  veth 10.75.0.2 --+                          +-- TAP 10.76.0.1 (vpnclient A)
                           |  ns S: bridge 10.75.0.1  |
    ns B  veth 10.75.0.3 --+  VPN server listens here +-- TAP 10.76.0.2 (vpnclient B)

The 10.76.0.0/24 addresses exist only on the TAP devices, so a ping between
them can only cross the VPN hub. `add_lan()` adds a third veth, ns B
10.76.0.2 <-> ns S (no address), for a hub's local bridge: then one VPN
session (A's TAP) reaches B through the server's bridge. Offloads are off on
every veth. Everything lives in the caller's `Lab` (removed at its close,
also on failure); a SoftEther server is stopped by PID (SoftEtherLab).
Failures raise LabError.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from tools.vpndrill.cluster import REPO_ROOT
from tools.vpndrill.lab.netns import Lab
from tools.vpndrill.lab.nsvpnd import NsVpnd
from tools.vpndrill.lab.softether import LabError, SoftEtherLab, SoftEtherServer

REPO = REPO_ROOT
SERVER_IP, HOST_A, HOST_B = "10.75.0.1", "10.75.0.2", "10.75.0.3"
TAP_A, TAP_B = "10.76.0.1", "10.76.0.2"
ADMIN_PW = "star-admin-pw"
HUB = "lab"
USERS = {"alice": "pw-alice", "bob": "pw-bob"}


class VpnStar:
    """The namespaces and links of the module docstring, in `lab`."""

    def __init__(self, lab: Lab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.ns_srv, self.ns_a, self.ns_b = lab.netns("s"), lab.netns("a"), lab.netns("b")
        a, a_srv = lab.veth(self.ns_a, self.ns_srv)
        b, b_srv = lab.veth(self.ns_b, self.ns_srv)
        br = lab.bridge(self.ns_srv, [a_srv, b_srv])
        lab.addr(self.ns_srv, br, f"{SERVER_IP}/24")
        lab.addr(self.ns_a, a, f"{HOST_A}/24")
        lab.addr(self.ns_b, b, f"{HOST_B}/24")
        for ns, name in ((self.ns_a, a), (self.ns_b, b), (self.ns_srv, a_srv), (self.ns_srv, b_srv)):
            lab.disable_offloads(ns, name)
        self.port = 0

    # ---- servers -----------------------------------------------------------

    def add_lan(self) -> str:
        """A veth from ns B (TAP_B/24) into ns S; returns its ns S end."""
        b, srv_end = self.lab.veth(self.ns_b, self.ns_srv)
        self.lab.addr(self.ns_b, b, f"{TAP_B}/24")
        self.lab.disable_offloads(self.ns_b, b)
        self.lab.disable_offloads(self.ns_srv, srv_end)
        return srv_end

    def start_vpnd(self, port: int = 4433, bridge: str | None = None, provision: bool = True) -> NsVpnd:
        """Our vpnd in ns S with hub `lab`, USERS and (optionally) a local
        bridge of the hub onto device `bridge` (provision=False: restart
        with the saved state)."""
        self.port = port
        node = NsVpnd(self.lab, self.ns_srv, self.tmp, hosts=(SERVER_IP, "127.0.0.1"), port=port,
                      password=ADMIN_PW)
        node.start()
        if not provision:
            return node
        node.ok("CreateHub", {"HubName_str": HUB, "Online_bool": True})
        for user, password in USERS.items():
            node.ok("CreateUser", {"HubName_str": HUB, "Name_str": user, "AuthType_u32": 1,
                                   "Auth_Password_str": password})
        if bridge:
            node.ok("AddLocalBridge", {"DeviceName_str": bridge, "HubNameLB_str": HUB, "TapMode_bool": False})
        return node

    def start_softether(self, selab: SoftEtherLab, bridge: str | None = None) -> SoftEtherServer:
        """A real SoftEther VPN Server in ns S with hub `lab`, USERS and
        (optionally) a local bridge onto device `bridge`."""
        srv = selab.server(f"star-{self.lab.tag}", netns=self.ns_srv, listen_ip=SERVER_IP)
        self.port = srv.port
        srv.rpc("CreateHub", {"HubName_str": HUB, "Online_bool": True, "HubType_u32": 0})
        for user, password in USERS.items():
            srv.rpc("CreateUser", {"HubName_str": HUB, "Name_str": user, "AuthType_u32": 1,
                                   "Auth_Password_str": password})
        if bridge:
            srv.rpc("AddLocalBridge", {"DeviceName_str": bridge, "HubNameLB_str": HUB, "TapMode_bool": False})
        return srv

    # ---- clients -----------------------------------------------------------

    def start_client(self, ns: str, user: str, tap_cidr: str) -> tuple[Path, subprocess.Popen]:
        """`vpnclient connect --tap` in `ns`; returns its status file and process."""
        pw = self.tmp / f"{user}.pw"
        pw.write_text(USERS[user] + "\n")
        status = self.tmp / f"{user}.status.json"
        status.unlink(missing_ok=True)
        log = open(self.tmp / f"{user}.log", "wb")
        proc = self.lab.popen(ns, [sys.executable, "-m", "tools.vpnclient.main", "connect",
                                   "--server", f"{SERVER_IP}:{self.port}", "--hub", HUB, "--user", user,
                                   "--password-file", str(pw), "--tap", self.lab.ifname("t"), "--ip", tap_cidr,
                                   "--status-file", str(status)], cwd=REPO, stdout=log, stderr=log)
        log.close()
        return status, proc

    def start_clients(self) -> tuple[dict, dict]:
        """Both clients, connected (their status records)."""
        paths = (self.start_client(self.ns_a, "alice", f"{TAP_A}/24")[0],
                 self.start_client(self.ns_b, "bob", f"{TAP_B}/24")[0])
        return tuple(wait_connected(p, self.tmp) for p in paths)  # type: ignore[return-value]


def wait_connected(status: Path, tmp: Path, attempts: int = 300, reconnects: int = 0) -> dict:
    doc: dict = {}
    for _ in range(attempts):
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(status.read_text())
            if doc.get("state") == "connected" and doc.get("reconnects", 0) >= reconnects:
                return doc
        time.sleep(0.05)
    logs = {p.name: p.read_text()[-600:] for p in tmp.glob("*.log")}
    raise LabError(f"client not connected: {doc}; logs: {logs}")


def ping_ok(lab: Lab, ns: str, address: str, count: int = 3) -> str:
    res = lab.run(ns, ["ping", "-c", str(count), "-i", "0.2", "-W", "3", address], check=False)
    if res.returncode != 0:
        raise LabError(res.stdout + res.stderr)
    return res.stdout


