"""A cluster whose servers each have their own network namespace and link,
so that a drill can take one server's link down or cut it off from the
controller alone (root only).

    drill ns (this process):  bridge 10.88.0.1/24 --+-- veth -- ns s0: controller 10.88.0.10:5555
                                                      +-- veth -- ns s1: member1    10.88.0.11:5555
                                                      +-- ...

`NsTopology(lab, servers)` first moves this whole process into a fresh
namespace of the lab (every thread started later, and every program, is
born there), so the bridge and its address never show outside it. The
drill's userspace clients connect from 10.88.0.1. Faults:

  link_down/up   the bridge end of the server's veth down/up: no packet in or out
  partition/heal an nftables table in the server's namespace dropping what
                 goes to or comes from the controller's address: clients still
                 reach the server, the controller does not

Everything is in the caller's `Lab`: its close() kills what is left, deletes
the links and removes the namespaces (also on failure and Ctrl-C).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import netns

from tools.vpndrill.cluster import REPO_ROOT, Node, stop_pid
from tools.vpndrill.lab.netns import Lab, root_skip_reason

SUBNET = "10.88.0"
PORT = 5555
NFT_TABLE = "vpndrill_partition"
LAN_HOST = "10.99.0.254"
LAN_MAC = "02:76:64:00:00:fe"
"""The host behind every server's local bridge: one address and MAC on each
LAN, so a client's ARP entry still holds after its session moved."""
LAN_PREFIX = 24
PING_INTERVAL_S = 0.2


class NsNode(Node):
    """A vpnd in namespace `ns` (started with `ip netns exec`, which execs
    it: the PID is vpnd's), reached at its own address."""

    lab: Lab
    ns: str

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return self.lab.popen(self.ns, argv, **kwargs)


class NsTopology:
    def __init__(self, lab: Lab, servers: int) -> None:
        self.lab = lab
        self.drill_ns = lab.netns("d")
        netns.setns(self.drill_ns)  # this process lives here from now on
        lab.up(None, "lo")
        self.bridge = lab.bridge(None)
        lab.addr(None, self.bridge, f"{SUBNET}.1/16")
        self.namespaces: list[str] = []
        self.outer: list[str] = []
        for i in range(servers):
            ns = lab.netns(f"s{i}")
            inner, outer = lab.veth(ns, None)
            with lab.iproute(None) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=outer)[0],
                         master=ipr.link_lookup(ifname=self.bridge)[0])
            lab.addr(ns, inner, f"{self.address(i)}/16")
            self.namespaces.append(ns)
            self.outer.append(outer)

    @staticmethod
    def address(i: int) -> str:
        return f"{SUBNET}.{10 + i}"

    def make_node(self, i: int, name: str, state_dir: Path, password: str, env: dict[str, str]) -> Node:
        node = NsNode(name, state_dir, password, env, port=PORT, hosts=(self.address(i), "127.0.0.1"),
                      address=self.address(i))
        node.lab, node.ns = self.lab, self.namespaces[i]
        return node

    def add_lan(self, i: int) -> str:
        """A LAN behind server i: a veth from its namespace to a new one
        holding LAN_HOST; returns the server's end, for AddLocalBridge."""
        lan = self.lab.netns(f"l{i}")
        host, server_end = self.lab.veth(lan, self.namespaces[i])
        with self.lab.iproute(lan) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=host)[0], address=LAN_MAC)
        self.lab.addr(lan, host, f"{LAN_HOST}/{LAN_PREFIX}")
        for ns, name in ((lan, host), (self.namespaces[i], server_end)):
            self.lab.disable_offloads(ns, name)
        return server_end

    def add_client_ns(self, n: int) -> str:
        """A namespace for TAP client n (1-based), linked to the bridge at 10.88.X.Y/16."""
        ns = self.lab.netns(f"c{n}")
        inner, outer = self.lab.veth(ns, None)
        with self.lab.iproute(None) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=outer)[0], master=ipr.link_lookup(ifname=self.bridge)[0])
        self.lab.addr(ns, inner, f"{SUBNET[:-2]}.{1 + n // 250}.{1 + n % 250}/16")
        return ns

    def link(self, i: int, up: bool) -> None:
        with self.lab.iproute(None) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=self.outer[i])[0], state="up" if up else "down")

    def partition(self, i: int, cut: bool) -> None:
        """Cut (or heal) server i from the controller (server 0)."""
        ctl = self.address(0)
        script = (f"add table inet {NFT_TABLE}\n"
                  f"add chain inet {NFT_TABLE} out {{ type filter hook output priority 0; }}\n"
                  f"add chain inet {NFT_TABLE} in {{ type filter hook input priority 0; }}\n"
                  f"add rule inet {NFT_TABLE} out ip daddr {ctl} drop\n"
                  f"add rule inet {NFT_TABLE} in ip saddr {ctl} drop\n") if cut else f"delete table inet {NFT_TABLE}\n"
        self.lab.run(self.namespaces[i], ["nft", "-f", "-"], timeout=10, input_text=script)


@dataclass
class TapClient:
    """`vpnclient connect --tap` in its own namespace, with a `ping` of
    `target` beside it; where its session is comes from its status file."""

    name: str
    hub: str
    lab: Lab
    ns: str
    tmp: Path
    tap_cidr: str
    target: str | None
    proc: subprocess.Popen | None = None
    pinger: subprocess.Popen | None = None
    _status: dict = field(default_factory=dict)

    @property
    def status_path(self) -> Path:
        return self.tmp / f"{self.name}.status.json"

    @property
    def ping_log(self) -> Path:
        return self.tmp / f"{self.name}.ping"

    def start(self, server: str, user: str, password: str) -> None:
        pw = self.tmp / f"{self.name}.pw"
        pw.write_text(password + "\n")
        with open(self.tmp / f"{self.name}.log", "wb") as log:
            self.proc = self.lab.popen(self.ns, [
                sys.executable, "-m", "tools.vpnclient.main", "connect", "--server", server, "--hub", self.hub,
                "--user", user, "--password-file", str(pw), "--tap", self.lab.ifname("t"), "--ip", self.tap_cidr,
                "--status-file", str(self.status_path), "--max-retries", "1000", "--retry-interval", "0.1",
                "--retry-max", "1"], cwd=REPO_ROOT, stdout=log, stderr=log)

    def start_ping(self) -> None:
        if self.target:
            with open(self.ping_log, "wb") as out:
                self.pinger = self.lab.popen(self.ns, ["ping", "-n", "-D", "-O", "-i", str(PING_INTERVAL_S),
                                                       self.target], stdout=out, stderr=subprocess.STDOUT)

    def status(self) -> dict:
        """The last status record read (a record being replaced keeps the previous one)."""
        try:
            self._status = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            pass
        return self._status

    def server(self) -> str | None:
        st = self.status()
        return st.get("server") if st.get("state") == "connected" else None

    def session_name(self) -> str | None:
        return self.status().get("session_name")

    def stop(self) -> None:
        for proc, name in ((self.pinger, "ping"), (self.proc, "vpnclient")):
            if proc is not None:
                stop_pid(proc, f"{self.name} {name}", wait_s=5.0)

    def pings(self) -> list[tuple[float, bool]]:
        """(Unix time sent, answered) of each ping, from ping's -D -O output."""
        out: list[tuple[float, bool]] = []
        try:
            text = self.ping_log.read_text(errors="replace")
        except OSError:
            return out
        answered: dict[int, float] = {}
        missed: dict[int, float] = {}
        for line in text.splitlines():
            m = _PING_LINE.match(line)
            if m:
                (answered if m.group(2) is None else missed)[int(m.group(3) or m.group(4))] = float(m.group(1))
        for seq, t in missed.items():
            if seq not in answered:
                out.append((t - PING_INTERVAL_S, False))  # reported one interval late: sent then
        out += [(t, True) for t in answered.values()]
        return sorted(out)


_PING_LINE = re.compile(r"^\[(\d+\.\d+)\] (?:(no answer yet) for icmp_seq=(\d+)|\d+ bytes from .*icmp_seq=(\d+))")


CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def netns_capable() -> bool:
    """True if this process may make namespaces, links and TAP devices:
    root's capabilities (not only its uid: a root whose capabilities were
    dropped, as in a container or under setpriv, may not) and /dev/net/tun."""
    if root_skip_reason() is not None:
        return False
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    eff = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapEff:")), 0)
    return all(eff >> bit & 1 for bit in (CAP_NET_ADMIN, CAP_SYS_ADMIN))
