"""A member's public endpoint checked by a real controller on loopback: set up
(ClusterSettingMember) with a closed public port, it is listed with the
reason (EnumFarmMember's EndpointError_str, vpnctl's member list and info,
the controller's log); set up again with its real listener port, it is
verified and the reason is gone (vpnctl's table is vpncmd's again)."""

from __future__ import annotations

import pytest

from tests.cluster_fakes import discover
from tests.integration.test_cluster import listed, ok, start_all, wait_for
from tests.vpnd_proc import Vpnd, free_port

pytestmark = pytest.mark.timeout(180)


def set_member(ctl: Vpnd, m: Vpnd, port: int) -> None:
    ok(m.vpnctl("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1", f"/PORTS:{port}",
                f"/PASSWORD:{ctl.password}"))


def test_member_with_a_closed_public_port_is_listed_with_the_reason_until_set_up_right(tmp_path):
    ctl, m = Vpnd(tmp_path / "ctl"), Vpnd(tmp_path / "m")
    try:
        start_all([ctl, m])
        ok(ctl.vpnctl("ClusterSettingController"))
        wait_for(lambda: discover(ctl.port).get("bus_port"), "controller bus up")
        closed = free_port()  # nothing listens there
        set_member(ctl, m, closed)
        why = f"endpoint failed: 127.0.0.1:{closed}: connection refused"
        row, _ = wait_for(lambda: listed(ctl).get(closed, {}).get("EndpointError_str") == why and listed(ctl)[closed],
                          "member listed with its endpoint failure")
        table = ok(ctl.vpnctl("ClusterMemberList"))
        assert "Public Endpoint Error" in table and why in table
        info = ok(ctl.vpnctl("ClusterMemberInfoGet", str(row["Id_u32"])))
        assert "Public Endpoint Error" in info and why in info
        assert f"public endpoint 127.0.0.1 port {closed} failed: 127.0.0.1:{closed}: connection refused" in ctl.log()
        # Set up with its real listener port: it rejoins, is checked again and passes.
        set_member(ctl, m, m.port)
        row, took = wait_for(lambda: listed(ctl).get(m.port, {}).get("EndpointError_str") == "" and listed(ctl)[m.port],
                             "member verified on its real port")
        print(f"endpoint verified {took:.2f} s after the new member setting")
        assert set(listed(ctl)) == {m.port}
        assert "Public Endpoint Error" not in ok(ctl.vpnctl("ClusterMemberList"))
        assert f"public endpoint 127.0.0.1 port {m.port} verified" in ctl.log()
    finally:
        m.stop()
        ctl.stop()
