"""Local bridges administered as an operator would: a real vpnd, run inside a
namespace of the test's own (so no device reaches the root namespace),
driven by `vpnctl` subprocesses.

- BridgeCreate /TAP:yes makes the TAP device `tap_<name>`, BridgeList shows
  it operating, a restart of vpnd brings it back, BridgeDelete removes it.
- Two bridges to veth ends (their peers in two host namespaces) on one hub
  carry a ping between the hosts; MacTable/IpTable list both hosts; a third,
  TAP bridge with an address in vpnd's namespace answers a ping too.
vpnd is stopped by its PID (SIGTERM, then SIGKILL); the lab removes
namespaces and links, also when a test fails.
"""

from __future__ import annotations

import base64
import os
import time

from tests.netns.lab import Lab, requires_root
from tests.netns.nsvpnd import WAIT_S, vpnd_in

pytestmark = requires_root

def _wait_links(lab: Lab, ns: str, name: str, present: bool) -> None:
    deadline = time.monotonic() + WAIT_S
    while (name in lab.links(ns)) != present:
        assert time.monotonic() < deadline, f"{name} {'missing' if present else 'still there'}: {lab.links(ns)}"
        time.sleep(0.05)


def test_tap_bridge_create_list_restart_delete(lab, tmp_path):
    ns = lab.netns("vpnd")
    tap = f"t{os.getpid() % 100000}"          # kernel name tap_t<pid>: unique, <= 15 bytes
    kernel = f"tap_{tap}"
    with vpnd_in(lab, ns, tmp_path) as node:
        node.vpnctl("HubCreate", "BRHUB", "/PASSWORD:hubpw")
        out = node.vpnctl("BridgeCreate", "BRHUB", f"/DEVICE:{tap}", "/TAP:yes").stdout
        assert "error" not in out.lower()
        _wait_links(lab, ns, kernel, True)
        rows = node.wait_active([tap])
        assert rows[tap] == {"DeviceName_str": tap, "HubNameLB_str": "BRHUB", "Online_bool": True,
                             "Active_bool": True, "TapMode_bool": True}
        assert "Operating" in node.vpnctl("BridgeList").stdout
        assert kernel not in lab.links(None)
        node.stop()
        _wait_links(lab, ns, kernel, False)        # the TAP device goes with its vpnd
        node.start()
        _wait_links(lab, ns, kernel, True)
        node.wait_active([tap])
        node.vpnctl("BridgeDelete", "BRHUB", f"/DEVICE:{tap}")
        _wait_links(lab, ns, kernel, False)
        assert node.bridges() == {}
        failed = node.vpnctl("BridgeDelete", "BRHUB", f"/DEVICE:{tap}", check=False)
        assert failed.returncode == 1 and "29" in failed.stderr + failed.stdout


def test_ping_between_namespaces_through_two_bridges(lab, tmp_path):
    node_ns = lab.netns("vpnd")
    hosts = []
    for i in (1, 2):
        host = lab.netns("h")
        host_end, node_end = lab.veth(host, node_ns)
        lab.addr(host, host_end, f"10.216.0.{i}/24")
        lab.disable_offloads(host, host_end)
        lab.disable_offloads(node_ns, node_end)
        with lab.iproute(host) as ipr:
            link = ipr.get_links(ipr.link_lookup(ifname=host_end)[0])[0]
            hosts.append((host, node_end, link.get_attr("IFLA_ADDRESS")))
    with vpnd_in(lab, node_ns, tmp_path) as node:
        node.vpnctl("HubCreate", "PINGHUB", "/PASSWORD:hubpw")
        for _, node_end, _ in hosts:
            node.vpnctl("BridgeCreate", "PINGHUB", f"/DEVICE:{node_end}", "/TAP:no")
        node.wait_active([end for _, end, _ in hosts])
        ping = lab.run(hosts[0][0], ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.216.0.2"], check=False)
        assert ping.returncode == 0, f"{ping.stdout}{ping.stderr}\n{node.log()}"

        macs = node.json("MacTable", hub="PINGHUB")["MacTable"]
        seen = {base64.b64decode(e["MacAddress_bin"]).hex(":") for e in macs}
        assert {mac for _, _, mac in hosts} <= seen, (seen, hosts)
        assert all(e["SessionName_str"].startswith("SID-LOCALBRIDGE-") for e in macs)
        ips = {e["IpAddress_ip"] for e in node.json("IpTable", hub="PINGHUB")["IpTable"]}
        assert {"10.216.0.1", "10.216.0.2"} <= ips
        table = node.vpnctl("MacTable", hub="PINGHUB").stdout
        assert all(mac.upper().replace(":", "-") in table for _, _, mac in hosts), table
        sessions = node.json("SessionList", hub="PINGHUB")["SessionList"]
        assert sorted(s["BridgeMode_bool"] for s in sessions) == [True, True]

        # a TAP bridge on the same hub: the vpnd namespace itself joins the segment
        tap = f"p{os.getpid() % 100000}"
        node.vpnctl("BridgeCreate", "PINGHUB", f"/DEVICE:{tap}", "/TAP:yes")
        node.wait_active([tap])
        lab.addr(node_ns, f"tap_{tap}", "10.216.0.3/24")
        lab.disable_offloads(node_ns, f"tap_{tap}")
        ping = lab.run(hosts[1][0], ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.216.0.3"], check=False)
        assert ping.returncode == 0, f"{ping.stdout}{ping.stderr}\n{node.log()}"
        ips = {e["IpAddress_ip"] for e in node.json("IpTable", hub="PINGHUB")["IpTable"]}
        assert "10.216.0.3" in ips
    assert all(end not in lab.links(None) for _, end, _ in hosts)
