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

import subprocess
from pathlib import Path

from pyroute2 import netns

from tools.vpndrill.cluster import Node
from tools.vpndrill.lab.netns import Lab

SUBNET = "10.88.0"
PORT = 5555
NFT_TABLE = "vpndrill_partition"


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
        lab.addr(None, self.bridge, f"{SUBNET}.1/24")
        self.namespaces: list[str] = []
        self.outer: list[str] = []
        for i in range(servers):
            ns = lab.netns(f"s{i}")
            inner, outer = lab.veth(ns, None)
            with lab.iproute(None) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=outer)[0],
                         master=ipr.link_lookup(ifname=self.bridge)[0])
            lab.addr(ns, inner, f"{self.address(i)}/24")
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
