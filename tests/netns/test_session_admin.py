"""Sessions of the real `vpnclient` administered with `vpnctl`, against a
vpnd inside the test's own namespace.

A TAP bridge gives vpnd's namespace an address on the hub; two userspace
clients (alice, bob) log in and answer ARP/ping for their addresses. Then:
SessionList names SID-LOCALBRIDGE-1, SID-ALICE-2, SID-BOB-3 (one counter
per hub, as SoftEther); a ping from the namespace reaches alice, and
MacTable/IpTable show her MAC and IP under her session; SessionGet shows her
login; SessionDisconnect ends bob's session; HubSetOffline ends alice's.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys

from tests.netns.lab import Lab, requires_root
from tests.netns.nsvpnd import ROOT, NsVpnd, vpnd_in, wait_for
from tools.vpndrill.cluster import stop_pid

pytestmark = requires_root

HUB = "SESS"


def _client(lab: Lab, node: NsVpnd, user: str, cidr: str) -> subprocess.Popen:
    pw = node.tmp / f"{user}.pw"
    pw.write_text(f"{user}-pw\n")
    log = open(node.tmp / f"client-{user}.log", "ab")
    try:
        # no quick reconnect: a disconnected session must stay gone for the test
        return lab.popen(node.ns, [
            sys.executable, "-m", "tools.vpnclient.main", "connect", "--server", "127.0.0.1:5555",
            "--hub", HUB, "--user", user, "--password-file", str(pw), "--userspace", "--ip", cidr,
            "--retry-interval", "600", "--retry-max", "600", "--connect-timeout", "10"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    finally:
        log.close()


def _client_log(node: NsVpnd, user: str) -> str:
    return (node.tmp / f"client-{user}.log").read_text(errors="replace")


def _sessions(node: NsVpnd) -> dict[str, dict]:
    return {s["Name_str"]: s for s in node.json("SessionList", hub=HUB)["SessionList"]}


def test_sessions_tables_and_disconnects_of_real_clients(lab, tmp_path):
    ns = lab.netns("vpnd")
    tap = f"s{os.getpid() % 100000}"
    with vpnd_in(lab, ns, tmp_path) as node:
        node.vpnctl("HubCreate", HUB, "/PASSWORD:hubpw")
        for user in ("alice", "bob"):
            node.vpnctl("UserCreate", user, hub=HUB)
            node.vpnctl("UserPasswordSet", user, f"/PASSWORD:{user}-pw", hub=HUB)
        node.vpnctl("BridgeCreate", HUB, f"/DEVICE:{tap}", "/TAP:yes")
        node.wait_active([tap])
        lab.addr(ns, f"tap_{tap}", "10.217.0.1/24")

        clients = []
        try:
            clients.append(_client(lab, node, "alice", "10.217.0.5/24"))
            wait_for(lambda: "SID-ALICE-2" in _sessions(node), "alice's session", log=node.log())
            clients.append(_client(lab, node, "bob", "10.217.0.6/24"))
            rows = wait_for(lambda: r if "SID-BOB-3" in (r := _sessions(node)) else None,
                            "bob's session", log=node.log())
            assert set(rows) == {"SID-LOCALBRIDGE-1", "SID-ALICE-2", "SID-BOB-3"}
            alice = rows["SID-ALICE-2"]
            assert alice["Username_str"] == "alice" and alice["ClientIP_ip"] == "127.0.0.1"
            assert alice["BridgeMode_bool"] is False and rows["SID-LOCALBRIDGE-1"]["BridgeMode_bool"] is True
            assert "SID-ALICE-2" in node.vpnctl("SessionList", hub=HUB).stdout

            ping = lab.run(ns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.217.0.5"], check=False)
            assert ping.returncode == 0, f"{ping.stdout}{ping.stderr}\n{node.log()}"
            ips = {e["IpAddress_ip"]: e for e in node.json("IpTable", hub=HUB)["IpTable"]}
            assert ips["10.217.0.5"]["SessionName_str"] == "SID-ALICE-2"
            assert ips["10.217.0.1"]["SessionName_str"] == "SID-LOCALBRIDGE-1"
            macs = {e["SessionName_str"] for e in node.json("MacTable", hub=HUB)["MacTable"]}
            assert {"SID-ALICE-2", "SID-LOCALBRIDGE-1"} <= macs
            only_alice = node.json("MacTable", "SID-ALICE-2", hub=HUB)["MacTable"]
            assert len(only_alice) == 1 and len(base64.b64decode(only_alice[0]["MacAddress_bin"])) == 6

            status = node.json("SessionGet", "SID-ALICE-2", hub=HUB)
            assert status["Username_str"] == "alice" and status["SessionStatus_ClientIp_ip"] == "127.0.0.1"
            assert status["NumTcpConnections_u32"] >= 1 and status["Recv.UnicastCount_u64"] >= 3
            assert len(base64.b64decode(status["SessionKey_bin"])) == 20

            node.vpnctl("SessionDisconnect", "SID-BOB-3", hub=HUB)
            wait_for(lambda: "SID-BOB-3" not in _sessions(node), "bob's session to end", log=node.log())
            wait_for(lambda: "SID-BOB-3 lost" in _client_log(node, "bob"), "bob's client to see it")
            failed = node.vpnctl("SessionDisconnect", "SID-LOCALBRIDGE-1", hub=HUB, check=False)
            assert failed.returncode == 1 and "82" in failed.stdout + failed.stderr

            node.vpnctl("HubSetOffline", HUB)
            assert _sessions(node) == {}
            wait_for(lambda: "SID-ALICE-2 lost" in _client_log(node, "alice"), "alice's client to see it")
            rows = node.bridges()
            assert rows[tap]["Online_bool"] is False and rows[tap]["Active_bool"] is False
        finally:
            for proc in clients:
                stop_pid(proc)
