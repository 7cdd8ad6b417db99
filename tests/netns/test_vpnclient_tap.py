"""Two `vpnclient --tap` processes in two namespaces ping each other through
a Virtual Hub: OUR vpnd's, and (same topology) a real SoftEther server's.

Topology: `VpnStar` (tools/vpndrill/lab/star.py, also used by
bench/throughput.py): the two clients' TAP addresses exist only on the TAP
devices, so a ping between them can only cross the VPN hub. All namespaces,
processes and devices are removed at teardown (Lab), also on failure; the
SoftEther server is stopped by PID (SoftEtherLab).
"""

from __future__ import annotations

import pytest

from tests.netns.lab import requires_root
from tests.softether_lab import SoftEtherLab, skip_reason
from tools.vpndrill.lab.star import SERVER_IP, TAP_A, TAP_B, USERS, VpnStar, ping_ok, wait_connected

pytestmark = [*requires_root, pytest.mark.timeout(180)]


def test_two_tap_clients_ping_through_our_vpnd(lab, tmp_path):
    star = VpnStar(lab, tmp_path)
    star.start_vpnd()
    a, b = star.start_clients()
    assert a["session_name"].startswith("SID-ALICE-") and b["session_name"].startswith("SID-BOB-")
    out = ping_ok(lab, star.ns_a, TAP_B)
    assert "3 received" in out
    ping_ok(lab, star.ns_b, TAP_A, count=2)


def test_tap_client_reaches_a_host_behind_a_local_bridge_of_our_vpnd(lab, tmp_path):
    star = VpnStar(lab, tmp_path)
    star.start_vpnd(bridge=star.add_lan())
    status, _ = star.start_client(star.ns_a, "alice", f"{TAP_A}/24")
    wait_connected(status, tmp_path)
    assert "3 received" in ping_ok(lab, star.ns_a, TAP_B)


def test_tap_clients_come_back_after_vpnd_restarts(lab, tmp_path):
    """vpnd is stopped and started again (same state): both TAP clients
    notice, back off, reconnect on their own, and the ping works again."""
    star = VpnStar(lab, tmp_path)
    vpnd = star.start_vpnd()
    star.start_clients()
    ping_ok(lab, star.ns_a, TAP_B, count=1)
    vpnd.stop()
    star.start_vpnd(provision=False)
    for user in USERS:
        doc = wait_connected(tmp_path / f"{user}.status.json", tmp_path, attempts=600, reconnects=1)
        assert doc["history"][1]["event"] in ("lost", "failed")
    assert "2 received" in ping_ok(lab, star.ns_a, TAP_B, count=2)


@pytest.mark.softether
def test_two_tap_clients_ping_through_a_real_softether_hub(lab, tmp_path):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    star = VpnStar(lab, tmp_path)
    with SoftEtherLab() as selab:
        star.start_softether(selab)
        a, b = star.start_clients()
        assert a["server"] == f"{SERVER_IP}:{star.port}"
        assert "3 received" in ping_ok(lab, star.ns_a, TAP_B)
