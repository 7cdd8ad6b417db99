"""Hub types and the functions a cluster cannot use, on real vpnd processes
on loopback (a controller, one member, one standalone server), driven with
vpnctl as an operator would. tests/compat/test_vpnctl_softether.py runs the
same verbs against the real SoftEther 5.01 and sees the same answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from node.softether.errors import Err
from tests.cluster_fakes import discover
from tests.integration.test_cluster import connection, make_member, ok, wait_for
from tests.vpnd_proc import Vpnd

pytestmark = pytest.mark.timeout(180)


def failed(result: subprocess.CompletedProcess, code: int) -> str:
    """The one stderr line of a verb the server refused with SoftEther error `code`."""
    assert result.returncode == 1, result.stderr + result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and f"({code})" in line, line
    return line


def hubs(node: Vpnd) -> list[tuple[str, int, bool]]:
    doc = json.loads(ok(node.vpnctl("HubList", json_out=True)))
    return sorted((h["HubName_str"], h["HubType_u32"], h["Online_bool"]) for h in doc["HubList"])


def hub_counts(node: Vpnd) -> tuple[int, int, int]:
    s = json.loads(ok(node.vpnctl("ServerStatusGet", json_out=True)))
    return s["NumHubTotal_u32"], s["NumHubStatic_u32"], s["NumHubDynamic_u32"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    base = tmp_path_factory.mktemp("hubtypes")
    ctl, member, alone = Vpnd(base / "ctl"), Vpnd(base / "m1"), Vpnd(base / "alone")
    try:
        for n in (ctl, member, alone):
            n.start(wait=False)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda n: n.wait_ready(), (ctl, member, alone)))
        ok(ctl.vpnctl("ClusterSettingController"))
        wait_for(lambda: discover(ctl.port).get("bus_port"), "controller bus up")
        make_member(ctl, member)
        wait_for(lambda: connection(member)["Online_bool"], "member joined")
        ok(ctl.vpnctl("HubCreateDynamic", "DYN"))
        ok(ctl.vpnctl("HubCreateStatic", "ST"))
        ok(alone.vpnctl("HubCreate", "SA"))
        yield ctl, member, alone
    finally:
        for n in (member, ctl, alone):
            if n.proc and n.proc.poll() is None:
                os.kill(n.proc.pid, signal.SIGCONT)
            n.stop()


def test_a_member_lists_static_hubs_and_no_dynamic_hub_without_an_instance(nodes):
    ctl, member, _ = nodes
    assert hubs(ctl) == [("DYN", 2, True), ("ST", 1, True)]
    assert hub_counts(ctl) == (2, 1, 1)
    wait_for(lambda: hubs(member) == [("ST", 1, True)], "the static hub pushed to the member", step=0.2)
    assert hub_counts(member) == (1, 1, 0)
    table = ok(member.vpnctl("HubList"))
    assert "ST" in table and "DYN" not in table


def test_a_hub_type_cannot_change(nodes):
    ctl, member, alone = nodes
    failed(ctl.vpnctl("HubSetStatic", "DYN"), Err.NOT_SUPPORTED)
    failed(ctl.vpnctl("HubSetDynamic", "ST"), Err.NOT_SUPPORTED)
    assert hubs(ctl) == [("DYN", 2, True), ("ST", 1, True)]
    failed(member.vpnctl("HubSetStatic", "ST"), Err.NOT_FARM_CONTROLLER)   # GetHub is the controller's
    failed(alone.vpnctl("HubSetStatic", "SA"), Err.INVALID_PARAMETER)    # a standalone hub has type 0
    failed(ctl.vpnctl("HubSetStatic", "NOHUB"), Err.HUB_NOT_FOUND)


def test_cascades_and_securenat_answer_the_cluster_error(nodes):
    ctl, member, _ = nodes
    for node in (ctl, member):
        assert "clustering" in failed(node.vpnctl("CascadeList", hub="ST"), Err.NOT_SUPPORTED)
        failed(node.vpnctl("SecureNatEnable", hub="ST"), Err.NOT_SUPPORTED)   # never on a static hub
    link = ctl.call("CreateLink", {"HubName_str": "ST"})["error"]
    assert link["code"] == Err.LINK_CANT_CREATE_ON_FARM
    failed(member.vpnctl("SecureNatEnable", hub="DYN"), Err.HUB_NOT_FOUND)   # not placed on this member
    assert "does not implement SecureNAT" in failed(ctl.vpnctl("SecureNatStatusGet", hub="DYN"),
                                                     Err.NOT_SUPPORTED)


def test_cascades_and_securenat_on_a_standalone_server(nodes):
    _, _, alone = nodes
    doc = json.loads(ok(alone.vpnctl("CascadeList", hub="SA", json_out=True)))
    assert doc["LinkList"] == []
    ok(alone.vpnctl("CascadeList", hub="SA"))
    assert "does not implement cascade" in alone.call("CreateLink", {"HubName_str": "SA"})["error"]["message"]
    assert "does not implement SecureNAT" in failed(alone.vpnctl("SecureNatEnable", hub="SA"), Err.NOT_SUPPORTED)
    failed(alone.vpnctl("CascadeList", hub="NOHUB"), Err.HUB_NOT_FOUND)
