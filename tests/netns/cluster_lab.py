"""A vpncluster in network namespaces, for takeover tests with real clients.

    [cli] client 10.91.0.100 --+                                  +-- m1 local bridge --+
    [ctl] controller 10.91.0.1 -+  [wan] bridge (WAN 10.91.0.0/24) |                      |
    [m1]  member 10.91.0.11 ----+                                  +-- m2 local bridge ---+ [lan] bridge
    [m2]  member 10.91.0.12 ----+                                  |                      |  192.168.91.1
    [m3]  member 10.91.0.13 ----+                                  +-- m3 local bridge --+  (the LAN host)

Every node is one vpnd in its own namespace, listening on its WAN address
and 127.0.0.1 at port 5555 (admin calls go to 127.0.0.1 inside the
namespace). The controller "functions only" (ControllerOnly), so every VPN
session is redirected to a member; a member's public IP is its WAN address,
so the redirect sends the client there. The static hub HUB exists on every
member (pushed by the controller), and each member bridges it (AddLocalBridge)
onto a veth whose other end is a port of the LAN bridge: whichever member a
client lands on, its hub reaches the LAN host. Offloads are off on the LAN
veths (frames cross AF_PACKET). A member is cut off by setting its port on
the WAN bridge down (`cut`), which also cuts it from the controller.

Nodes run with VPNCLUSTER_LIVENESS_S=LIVENESS_S, so the controller evicts a
frozen or cut-off member after that many seconds instead of its default 3 s.

`PingStream` runs ping(8) in a namespace and measures its gaps with
tools/vpnclient/gaps.py's GapTracker (send time of each answered probe =
receive time printed by `ping -D` minus its round-trip time); `lost()` counts
the probes ping sent that were not answered.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.netns.lab import Lab
from tools.vpndrill.lab.nsvpnd import PORT, NsVpnd, wait_for
from tests.softether_lab import in_netns
from tools.vpnclient.gaps import GapReport, GapTracker
from tools.vpndrill.cluster import LIVENESS_ENV, discover_bus

WAN_PREFIX, LAN_PREFIX = "10.91.0", "192.168.91"
CONTROLLER_IP = f"{WAN_PREFIX}.1"
CLIENT_WAN_IP = f"{WAN_PREFIX}.100"
LAN_HOST = f"{LAN_PREFIX}.1"
ADMIN_PW = "cluster-admin-pw"
HUB = "HUB"
USERS = {"alice": "pw-alice"}
LIVENESS_S = 2.0
JOIN_S = 40.0


@dataclass
class Member:
    name: str
    ns: str
    ip: str
    node: NsVpnd
    wan_port: str
    """Its veth end in the WAN namespace (a port of the WAN bridge)."""
    lan_end: str
    """Its veth end in its own namespace that the hub is bridged onto."""

    @property
    def address(self) -> str:
        return f"{self.ip}:{PORT}"


class ClusterLab:
    """The topology of the module docstring in `lab`; `start()` runs and provisions it."""

    def __init__(self, lab: Lab, tmp: Path, members: int = 3) -> None:
        self.lab, self.tmp = lab, tmp
        self.ns_wan, self.ns_lan, self.ns_cli = lab.netns("w"), lab.netns("l"), lab.netns("c")
        self.ns_ctl = lab.netns("k")
        wan_ports, lan_ports = [], []
        ctl_end, port = lab.veth(self.ns_ctl, self.ns_wan)
        wan_ports.append(port)
        lab.addr(self.ns_ctl, ctl_end, f"{CONTROLLER_IP}/24")
        cli_end, port = lab.veth(self.ns_cli, self.ns_wan)
        wan_ports.append(port)
        lab.addr(self.ns_cli, cli_end, f"{CLIENT_WAN_IP}/24")
        self.controller = self._node(self.ns_ctl, "controller", CONTROLLER_IP)
        self.members: list[Member] = []
        for i in range(1, members + 1):
            ns, ip = lab.netns(f"m{i}"), f"{WAN_PREFIX}.{10 + i}"
            wan_end, port = lab.veth(ns, self.ns_wan)
            wan_ports.append(port)
            lab.addr(ns, wan_end, f"{ip}/24")
            lan_end, lan_port = lab.veth(ns, self.ns_lan)
            lan_ports.append(lan_port)
            lab.disable_offloads(ns, lan_end)
            lab.disable_offloads(self.ns_lan, lan_port)
            self.members.append(Member(f"m{i}", ns, ip, self._node(ns, f"m{i}", ip), port, lan_end))
        lab.bridge(self.ns_wan, wan_ports)
        lan_br = lab.bridge(self.ns_lan, lan_ports)
        lab.addr(self.ns_lan, lan_br, f"{LAN_HOST}/24")
        lab.disable_offloads(self.ns_lan, lan_br)

    def _node(self, ns: str, name: str, ip: str) -> NsVpnd:
        (self.tmp / name).mkdir()
        node = NsVpnd(self.lab, ns, self.tmp / name, hosts=(ip, "127.0.0.1"), port=PORT, password=ADMIN_PW)
        node.env = {**os.environ, LIVENESS_ENV: f"{LIVENESS_S:g}"}
        return node

    @property
    def nodes(self) -> list[NsVpnd]:
        return [self.controller, *(m.node for m in self.members)]

    # ---- bring-up --------------------------------------------------------------

    def start(self) -> None:
        """Start every vpnd, make the cluster, create HUB and USERS on the
        controller, and bridge HUB onto the LAN on every member."""
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_started()
        self.controller.ok("SetFarmSetting", {"ServerType_u32": 1, "Weight_u32": 100, "ControllerOnly_bool": True})
        wait_for(lambda: in_netns(self.ns_ctl, lambda: discover_bus(PORT)), "the controller's bus", JOIN_S,
                 log=self.controller.log())
        for m in self.members:
            m.node.ok("SetFarmSetting", {
                "ServerType_u32": 2, "ControllerName_str": CONTROLLER_IP, "ControllerPort_u32": PORT,
                "MemberPasswordPlaintext_str": ADMIN_PW, "PublicIp_ip": m.ip, "Ports_u32": [PORT],
                "Weight_u32": 100})
        self.wait_listed(self.members)
        self.controller.ok("CreateHub", {"HubName_str": HUB, "Online_bool": True, "HubType_u32": 1})
        for user, password in USERS.items():
            self.controller.ok("CreateUser", {"HubName_str": HUB, "Name_str": user, "AuthType_u32": 1,
                                              "Auth_Password_str": password})
        for m in self.members:
            wait_for(lambda m=m: HUB in self.hubs_of(m.node), f"{HUB} pushed to {m.name}", JOIN_S, log=m.node.log())
            m.node.ok("AddLocalBridge", {"DeviceName_str": m.lan_end, "HubNameLB_str": HUB, "TapMode_bool": False})
            wait_for(lambda m=m: all(b["Active_bool"] for b in m.node.ok("EnumLocalBridge")["LocalBridgeList"]),
                     f"{m.name}'s local bridge active", JOIN_S, log=m.node.log())

    @staticmethod
    def hubs_of(node: NsVpnd) -> set[str]:
        doc = node.call("EnumHub")
        return {h["HubName_str"] for h in doc.get("result", {}).get("HubList", [])}

    def listed(self) -> set[str]:
        """WAN addresses of the members the controller lists now."""
        doc = self.controller.call("EnumFarmMember")
        rows = doc.get("result", {}).get("FarmMemberList", [])
        return {r["Ip_ip"] for r in rows if not r["Controller_bool"]}

    def wait_listed(self, members: list[Member], *, exactly: bool = False) -> None:
        want = {m.ip for m in members}
        wait_for(lambda: want == self.listed() if exactly else want <= self.listed(),
                 f"controller lists {sorted(want)}", JOIN_S, log=self.controller.log())

    def member_at(self, address: str) -> Member:
        """The member whose WAN address `address` ("ip" or "ip:port") names."""
        ip = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
        found = [m for m in self.members if m.ip == ip]
        assert found, f"{address} is not a member's address ({[m.ip for m in self.members]})"
        return found[0]

    def cut(self, member: Member) -> None:
        """Set the member's port on the WAN bridge down: neither clients nor
        the controller reach it any more."""
        with self.lab.iproute(self.ns_wan) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=member.wan_port)[0], state="down")

    def logs(self) -> str:
        return "\n".join(f"---- {n.name} {n.ns}\n{n.log()[-3000:]}" for n in self.nodes)


class PingStream:
    """`ping -D -i INTERVAL DST` in `ns`, started now, stopped by stop()."""

    LINE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*time=([\d.]+) ms")

    def __init__(self, lab: Lab, ns: str, dst: str, out: Path, interval_s: float = 0.1) -> None:
        self.interval_s, self.out = interval_s, out
        self._file = open(out, "wb")
        self.proc = lab.popen(ns, ["ping", "-n", "-D", "-i", f"{interval_s:g}", "-W", "1", dst],
                              stdout=self._file, stderr=subprocess.STDOUT)
        self.started = time.time()

    def replies(self) -> list[tuple[float, int, float]]:
        """(receive time, seq, rtt s) of every answer so far."""
        rows = []
        for line in self.out.read_text(errors="replace").splitlines():
            m = self.LINE.match(line)
            if m:
                rows.append((float(m.group(1)), int(m.group(2)), float(m.group(3)) / 1000))
        return rows

    def lost(self) -> int:
        seqs = [seq for _, seq, _ in self.replies()]
        return max(seqs) - min(seqs) + 1 - len(set(seqs)) if seqs else 0

    def answered_after(self, t: float, count: int = 1) -> bool:
        """At least `count` probes sent after time `t` were answered."""
        return sum(at - rtt > t for at, _, rtt in self.replies()) >= count

    def stop(self) -> GapReport:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._file.close()
        return self.report()

    def report(self) -> GapReport:
        """Gaps between consecutive answered probes, all of them (slack 0):
        longest_gap_s is the longest time without an answered probe, one
        interval when nothing was lost."""
        tracker = GapTracker(self.interval_s, slack=0.0)
        for at, seq, rtt in self.replies():
            tracker.sent(seq, at - rtt)
            tracker.answered(seq)
        return tracker.report()
