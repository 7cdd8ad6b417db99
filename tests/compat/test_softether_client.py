"""THE real Debian softether-vpnclient (5.01) against our vpnd.

Topology, all in namespaces this test creates (softether-lab.md):

    [cli] real vpnclient, TAP vpn_vpn1 192.168.<n>.2 --(veth 10.<n>.0.0/24)--> [srv] vpnd :5555
    [srv] vpnd hub HUB --local bridge (AF_PACKET on a veth end)--> [host] 192.168.<n>.1

The client is configured only through its vpncmd (NicCreate, AccountCreate
with vpnd's IP literal and port, AccountPasswordSet /TYPE:standard,
AccountConnect), exactly as an operator would. It must establish a session
and ping the host on the other side of our hub; with a wrong password it
must report the authentication error while our node logs it and stays up.
Every process is stopped by PID and every namespace removed, also on failure.
"""

from __future__ import annotations

import http.client
import random
import re
import time

import pytest

from node.state.tlscert import client_context
from tests.netns.lab import Lab, requires_root
from tests.netns.nsvpnd import NsVpnd
from tests.softether_lab import (
    SoftEtherClient, SoftEtherLab, account_status, in_netns, require_softether, wait_account,
)

pytestmark = [pytest.mark.softether, *requires_root]

PORT = 5555                  # inside the test's own namespace: always free
ADMIN_PW = "compat-admin-pw"
HUB, USER, PASSWORD = "HUB", "alice", "alice-pw"
WAIT_S = 40.0


def _until(what: str, check, extra=lambda: ""):
    """Poll `check()` (every 0.2 s, at most WAIT_S) until it is true; return its value."""
    for _ in range(int(WAIT_S / 0.2)):
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{extra()}")


def _account(client: SoftEtherClient, name: str, nic: str, server: str, password: str) -> None:
    client.must("NicCreate", nic)
    client.must("AccountCreate", name, f"/SERVER:{server}", f"/HUB:{HUB}", f"/USERNAME:{USER}",
                f"/NICNAME:{nic}")
    client.must("AccountPasswordSet", name, f"/PASSWORD:{password}", "/TYPE:standard")
    client.must("AccountRetrySet", name, "/NUM:999", "/INTERVAL:5")


@pytest.fixture
def lab():
    require_softether(need_client=True)
    with Lab() as the_lab:
        yield the_lab


def _net(lab: Lab) -> tuple[int, str, str]:
    """vpnd's namespace with a host namespace behind a veth that vpnd will
    bridge: returns (n, vpnd namespace, vpnd's end of the host veth)."""
    n = random.randint(20, 250)
    srv, host = lab.netns("srv"), lab.netns("host")
    h_end, b_end = lab.veth(host, srv)
    lab.addr(host, h_end, f"192.168.{n}.1/24")
    for ns, dev in ((host, h_end), (srv, b_end)):
        lab.disable_offloads(ns, dev)
    return n, srv, b_end


def _hub_with_bridge(node: NsVpnd, device: str) -> None:
    node.ok("CreateHub", {"HubName_str": HUB, "Online_bool": True})
    node.ok("CreateUser", {"HubName_str": HUB, "Name_str": USER, "AuthType_u32": 1,
                           "Auth_Password_str": PASSWORD})
    node.ok("AddLocalBridge", {"DeviceName_str": device, "HubNameLB_str": HUB, "TapMode_bool": False})
    _until("the local bridge to become active", lambda: any(
        b["Active_bool"] for b in node.ok("EnumLocalBridge")["LocalBridgeList"]), extra=node.log)


def _ping(lab: Lab, ns: str, address: str, node: NsVpnd, count: int = 3) -> None:
    done = lab.run(ns, ["ping", "-c", str(count), "-i", "0.3", "-W", "3", address], check=False)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{node.log()}"


def _real_client_session(lab: Lab, node: NsVpnd, client_ns: str, server_ip: str, client_ip: str, n: int) -> None:
    """The scenario: connect, ping across the hub, session listed; a wrong
    password is refused with ERR_AUTH_FAILED and the good session lives on."""
    with SoftEtherLab() as se:
        client = se.client(client_ns)
        server = f"{server_ip}:{PORT}"
        _account(client, "good", "vpn1", server, PASSWORD)
        client.must("AccountConnect", "good")
        status = wait_account(client, "good", lambda s: "Established" in s.get("Session Status", ""),
                              WAIT_S, extra=node.log)
        assert status["Server Name"] == server_ip, status
        lab.addr(client_ns, "vpn_vpn1", f"192.168.{n}.2/24")
        _ping(lab, client_ns, f"192.168.{n}.1", node)

        sessions = node.ok("EnumSession", {"HubName_str": HUB})["SessionList"]
        mine = [s for s in sessions if s["Username_str"] == USER]
        assert len(mine) == 1 and mine[0]["Name_str"].startswith("SID-ALICE-"), sessions
        assert mine[0]["ClientIP_ip"] == client_ip
        detail = node.ok("GetSessionStatus", {"HubName_str": HUB, "Name_str": mine[0]["Name_str"]})
        assert "SoftEther VPN Client" in detail["ClientProductName_str"]

        # a wrong password: the real client reports ERR_AUTH_FAILED (9); vpnd logs it and serves on
        _account(client, "bad", "vpn2", server, "not-the-password")
        client.must("AccountConnect", "bad")
        _until("vpnd to log the failed login",
               lambda: f"login failed: user {USER!r} on hub {HUB!r} from {client_ip}: wrong password" in node.log(),
               extra=node.log)
        _until("the client to report the authentication error",
               lambda: re.search(r"\(code 9\)", _client_logs(client)), extra=lambda: _client_logs(client))
        assert "Established" not in account_status(client, "bad").get("Session Status", "")
        client.cmd("AccountDisconnect", "bad")
        assert node.running()
        _ping(lab, client_ns, f"192.168.{n}.1", node, count=2)
        assert "Established" in account_status(client, "good").get("Session Status", "")
        client.cmd("AccountDisconnect", "good")


def test_real_client_beside_vpnd_pings_across_our_hub_and_a_wrong_password_is_refused(lab, tmp_path):
    """Client and vpnd share a namespace; the client connects to 127.0.0.1."""
    n, srv, b_end = _net(lab)
    node = NsVpnd(lab, srv, tmp_path, port=PORT, password=ADMIN_PW)
    node.start()
    try:
        _hub_with_bridge(node, b_end)
        _real_client_session(lab, node, srv, "127.0.0.1", "127.0.0.1", n)
    finally:
        node.stop()
    assert node.proc.returncode == 0, node.log()   # a clean shutdown with a real client's session up


def test_real_client_in_another_namespace_reaches_vpnd_over_a_veth(lab, tmp_path):
    """The client's own namespace, vpnd's IP literal on a veth: the path every
    remote client takes, which first probes `GET /` (see _detectable)."""
    n, srv, b_end = _net(lab)
    cli = lab.netns("cli")
    c_end, s_end = lab.veth(cli, srv)
    lab.addr(cli, c_end, f"10.{n}.0.1/24")
    lab.addr(srv, s_end, f"10.{n}.0.2/24")
    node = NsVpnd(lab, srv, tmp_path, hosts=("127.0.0.1", f"10.{n}.0.2"), port=PORT, password=ADMIN_PW)
    node.start()
    try:
        _remote_session(lab, node, cli, b_end, n)
    finally:
        node.stop()
    assert node.proc.returncode == 0, node.log()   # a clean shutdown with a real client's session up


def _remote_session(lab: Lab, node: NsVpnd, cli: str, b_end: str, n: int) -> None:
    # the real 5.01 client probes `GET /` (X-VPN: 1) before connecting to a
    # non-local server and gives up with code 1 unless the page carries the tag
    assert _detectable(node), "vpnd's `GET /` page lacks SoftEther's server-detection tag " + DETECT_TAG
    _hub_with_bridge(node, b_end)
    _real_client_session(lab, node, cli, f"10.{n}.0.2", f"10.{n}.0.1", n)


# Mayaqua/Network.c DetectIsServerSoftEtherVPN: the body of `GET /` must contain
# this tag (or start with Apache's 403 text) or the client drops the server.
DETECT_TAG = "9C37197CA7C2428388C2E6E59B829B30"


def _detectable(node: NsVpnd) -> bool:
    def probe() -> bool:
        conn = http.client.HTTPSConnection("127.0.0.1", PORT, timeout=10, context=client_context())
        try:
            conn.request("GET", "/", headers={"X-VPN": "1"})
            return DETECT_TAG in conn.getresponse().read().decode("latin-1")
        finally:
            conn.close()
    return in_netns(node.ns, probe)


def _client_logs(client: SoftEtherClient) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((client.base_dir / "log").rglob("*.log")))
