"""Real frames through our Virtual Hub: ping between namespaces across
local bridges (AF_PACKET on veth ends, and a TAP device)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil

import pytest

from node.dataplane.bridge import LocalBridge
from node.dataplane.tap import open_packet
from node.dataplane.virtual_hub import VirtualHub
from tests.netns.lab import Lab, requires_root

pytestmark = requires_root

RUN_TIMEOUT_S = 30.0


async def _run(lab: Lab, ns: str, argv: list[str]) -> tuple[int, str]:
    """Run a program in `ns` without blocking the loop (the hub keeps switching)."""
    proc = await asyncio.create_subprocess_exec(
        *lab.argv(ns, argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode()


async def _ping(lab: Lab, ns: str, address: str) -> str:
    rc, out = await _run(lab, ns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", address])
    assert rc == 0, out
    return out


def _host(lab: Lab, node: str, cidr: str) -> tuple[str, str]:
    """A namespace with a veth whose other end is in `node`; returns (ns, node end)."""
    ns = lab.netns("h")
    host_end, node_end = lab.veth(ns, node)
    lab.addr(ns, host_end, cidr)
    lab.disable_offloads(ns, host_end)
    lab.disable_offloads(node, node_end)
    return ns, node_end


@contextlib.asynccontextmanager
async def _hub(lab: Lab, node: str, devices: list[tuple[str, bool]]):
    """A started hub with one LocalBridge per (device, tap_mode), opened
    inside `node`; everything is closed on exit, also after a failure."""
    hub = VirtualHub("HUB")
    hub.start()
    bridges: list[LocalBridge] = []
    try:
        with lab.inside(node):
            for device, tap_mode in devices:
                bridges.append(await LocalBridge.open(hub, device, tap_mode=tap_mode))
        yield hub, bridges
    finally:
        for bridge in bridges:
            bridge.close()
        hub.close()


def test_ping_through_hub_between_two_af_packet_bridges(lab):
    node = lab.netns("node")
    ns1, end1 = _host(lab, node, "10.213.0.1/24")
    ns2, end2 = _host(lab, node, "10.213.0.2/24")

    async def main():
        async with _hub(lab, node, [(end1, False), (end2, False)]) as (hub, (b1, b2)):
            out = await _ping(lab, ns1, "10.213.0.2")
            assert re.search(r"3 received", out), out
            macs = {(e.session_name, e.vlan_id) for e in hub.mac_table()}
            assert {b1.name, b2.name} <= {name for name, _ in macs}
            ips = {bytes(e.ip_address): e.session_name for e in hub.ip_table()}
            assert ips[bytes((10, 213, 0, 1))] == b1.name
            assert ips[bytes((10, 213, 0, 2))] == b2.name
            t1 = hub.traffic(b1)
            assert t1.recv_unicast_count >= 3 and t1.send_unicast_count >= 3
            assert b1.recv_frames >= 3 and b2.sent_frames >= 3
            assert b1.active and not b1.device.tap_mode
        assert hub.mac_table() == [] and b1.device.fd == -1

    asyncio.run(main())


def test_ping_through_hub_to_a_tap_bridge(lab):
    node = lab.netns("node")
    ns1, end1 = _host(lab, node, "10.214.0.1/24")
    ns2 = lab.netns("t")
    tap_name = lab.ifname("t")

    async def main():
        async with _hub(lab, node, [(end1, False), (tap_name, True)]) as (hub, (_, tap)):
            # the TAP fd stays ours while the device moves to the host namespace
            lab.move(tap_name, node, ns2)
            lab.addr(ns2, tap_name, "10.214.0.2/24")
            out = await _ping(lab, ns1, "10.214.0.2")
            assert re.search(r"3 received", out), out
            assert tap.recv_frames >= 3 and tap.sent_frames >= 3
            assert tap.device.tap_mode and tap.active
        # closing the only fd of a non-persistent TAP removes the device
        assert tap_name not in lab.links(ns2)

    asyncio.run(main())


def test_lab_removes_everything_on_failure():
    lab = Lab()
    with pytest.raises(RuntimeError):
        with lab:
            ns = lab.netns("x")
            a, _ = lab.veth(None, ns)
            raise RuntimeError("test failed here")
    assert a not in lab.links(None)
    from pyroute2 import netns
    assert ns not in netns.listnetns()


def test_tcp_through_hub(lab):
    """A TCP transfer (iperf3, 2 MB) crosses the hub: checksums and segment
    sizes survive the AF_PACKET path with offloads off."""
    node = lab.netns("node")
    ns1, end1 = _host(lab, node, "10.215.0.1/24")
    ns2, end2 = _host(lab, node, "10.215.0.2/24")
    server = lab.popen(ns2, ["iperf3", "-s", "-1", "-B", "10.215.0.2", "-p", "5201"])

    async def main():
        async with _hub(lab, node, [(end1, False), (end2, False)]) as (hub, (b1, b2)):
            argv = ["iperf3", "-c", "10.215.0.2", "-p", "5201", "-n", "2M", "--connect-timeout", "3000",
                    "--json"]
            for _ in range(20):  # the server may still be starting
                rc, out = await _run(lab, ns1, argv)
                if rc == 0 or "refused" not in out:
                    break
                await asyncio.sleep(0.1)
            assert rc == 0, out
            # -n counts at the sender's socket, and the receiver stops reading at the end
            # message (its own TCP connection, which overtakes the bulk data on a loaded
            # machine): what the receiver got is what surely crossed the hub
            received = json.loads(out)["end"]["sum_received"]["bytes"]
            assert received > 0 and b1.recv_bytes > received and b2.sent_bytes > received

    asyncio.run(main())
    server.wait(timeout=10)


def test_a_bridged_nic_gets_its_offloads_turned_off_as_softether_does(lab):
    """GRO hands AF_PACKET merged frames no session can carry: off, as SoftEther."""
    if shutil.which("ethtool") is None:
        pytest.skip("needs ethtool")
    node = lab.netns("node")
    nic, _ = lab.veth(node, node)
    lab.run(node, ["ethtool", "-K", nic, "gro", "on", "tso", "on"], check=False)
    if "generic-receive-offload: on" not in lab.run(node, ["ethtool", "-k", nic]).stdout:
        pytest.skip("this kernel's veth cannot turn GRO on")

    async def main():
        with lab.inside(node):
            device = await open_packet(nic)
        device.close()

    asyncio.run(main())
    features = lab.run(node, ["ethtool", "-k", nic]).stdout
    assert "generic-receive-offload: off" in features and "tcp-segmentation-offload: off" in features
