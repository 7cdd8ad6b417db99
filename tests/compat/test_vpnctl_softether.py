"""vpnctl against the real SoftEther VPN Server 5.01, driven as an operator would:
the CLI in a subprocess, tables on stdout, one-line errors on stderr.

Needs root and Debian's softether-vpnserver/vpncmd (skipped otherwise). Every
server runs on loopback in its own mount/UTS namespace (tests/softether_lab.py)
and is stopped by PID at teardown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.softether.sha0 import hash_password
from tests.netns.lab import Lab, root_skip_reason
from tests.softether_lab import (
    SERVER_TYPE_CONTROLLER,
    SERVER_TYPE_MEMBER,
    SERVER_TYPE_STANDALONE,
    SoftEtherServer,
    free_port,
    skip_reason,
    softether_lab,  # noqa: F401  (fixture)
    softether_server,  # noqa: F401  (fixture)
)

pytestmark = [pytest.mark.softether, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def vpnctl(
    server: SoftEtherServer | str, *words: str, password: str | None = None, hub: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m tools.vpnctl.main --server ... words` with the password in
    the env (inside the server's network namespace, if it has one)."""
    address = server if isinstance(server, str) else server.address
    if password is None:
        password = server.password if isinstance(server, SoftEtherServer) else ""
    cmd = [sys.executable, "-m", "tools.vpnctl.main", "--server", address, "--connect-timeout", "3"]
    if isinstance(server, SoftEtherServer) and server.netns is not None:
        cmd = ["ip", "netns", "exec", server.netns, *cmd]
    if hub:
        cmd += ["--hub", hub]
    env = {**os.environ, "VPNCTL_PASSWORD": password}
    return subprocess.run(
        [*cmd, *words], capture_output=True, text=True, cwd=REPO, env=env, timeout=60, stdin=subprocess.DEVNULL
    )


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"
    assert res.stderr == ""
    return res.stdout


def ok_json(server: SoftEtherServer, *words: str, hub: str | None = None) -> dict:
    return json.loads(ok(vpnctl(server, "--json", *words, hub=hub)))


def one_line_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, f"exit {res.returncode}, stdout {res.stdout!r}, stderr {res.stderr!r}"
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a tabulate "presto" table, cells stripped."""
    lines = text.strip().splitlines()
    return [[c.strip() for c in line.split("|")] for line in lines[2:]]


def item(text: str, label: str) -> str:
    for row in table_rows(text):
        if row[0] == label:
            return row[1]
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_server_info_and_status(softether_server):
    srv = softether_server
    info = ok(vpnctl(srv, "ServerInfoGet"))
    assert item(info, "Host Name") == srv.name
    assert item(info, "Server Type") == "Standalone Server"
    assert "SoftEther VPN Server" in item(info, "Product Name")
    status = ok(vpnctl(srv, "serverstatusget"))  # verbs are case-insensitive
    assert item(status, "Number of Virtual Hubs") == "0"
    raw = ok_json(srv, "ServerStatusGet")
    assert raw["ServerType_u32"] == SERVER_TYPE_STANDALONE and "NumSessionsTotal_u32" in raw


def test_hub_and_user_lifecycle(softether_server):
    srv = softether_server
    assert ok(vpnctl(srv, "HubCreate", "lab1", "/PASSWORD:hubpw")).strip() == "The command completed successfully."
    rows = table_rows(ok(vpnctl(srv, "HubList")))
    assert [r[:3] for r in rows] == [["lab1", "Online", "Standalone"]]

    ok(vpnctl(srv, "UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice A", "/NOTE:note: x", hub="lab1"))
    ok(vpnctl(srv, "UserPasswordSet", "alice", "/PASSWORD:s3cret", hub="lab1"))
    user = ok_json(srv, "UserGet", "alice", hub="lab1")
    # The password really was set (HashedKey = SHA0(pw + upper(user))), and
    # UserPasswordSet kept the other fields.
    assert base64.b64decode(user["HashedKey_bin"]) == hash_password("alice", "s3cret")
    assert (user["Realname_utf"], user["Note_utf"], user["AuthType_u32"]) == ("Alice A", "note: x", 1)
    shown = ok(vpnctl(srv, "UserGet", "alice", hub="lab1"))
    assert item(shown, "Auth Type") == "Password Authentication"
    assert item(shown, "Description") == "note: x"
    users = table_rows(ok(vpnctl(srv, "UserList", hub="lab1")))
    assert [u[:3] for u in users] == [["alice", "Alice A", "(None)"]]

    # A hub administrator (hub password) may manage its hub.
    hub_admin = vpnctl(srv, "--hub-admin", "UserList", hub="lab1", password="hubpw")
    assert "alice" in ok(hub_admin)
    one_line_error(vpnctl(srv, "--hub-admin", "UserList", hub="lab1", password="wrong"), 4)

    ok(vpnctl(srv, "HubSetOffline", hub="lab1"))
    assert table_rows(ok(vpnctl(srv, "HubList")))[0][1] == "Offline"
    ok(vpnctl(srv, "HubSetOnline", "lab1"))
    assert table_rows(ok(vpnctl(srv, "HubList")))[0][1] == "Online"

    ok(vpnctl(srv, "UserDelete", "alice", hub="lab1"))
    assert ok_json(srv, "UserList", hub="lab1")["UserList"] == []
    line = one_line_error(vpnctl(srv, "UserGet", "alice", hub="lab1"), 1)
    assert "ERR_OBJECT_NOT_FOUND (29)" in line
    ok(vpnctl(srv, "HubDelete", "lab1"))
    assert ok_json(srv, "HubList")["HubList"] == []
    line = one_line_error(vpnctl(srv, "HubDelete", "lab1"), 1)
    assert line.startswith("Error: ERR_HUB_NOT_FOUND (8): ")


def test_errors_are_one_line(softether_server):
    srv = softether_server
    line = one_line_error(vpnctl(srv, "HubList", password="wrong"), 4)
    assert "ERR_AUTH_FAILED (9)" in line and "HTTP 401" in line
    one_line_error(vpnctl(f"127.0.0.1:{free_port()}", "HubList"), 3)
    one_line_error(vpnctl(srv, "UserList"), 2)  # no --hub
    one_line_error(vpnctl(srv, "UserPasswordSet", "bob", hub="h"), 2)  # no /PASSWORD
    one_line_error(vpnctl(srv, "NoSuchVerb"), 2)
    line = one_line_error(vpnctl(srv, "ClusterMemberList"), 1)  # standalone: not a controller
    assert "ERR_NOT_FARM_CONTROLLER (46)" in line
    line = one_line_error(vpnctl(srv, "UserCreate", "u", "/GROUP:nogroup", hub="nohub"), 1)
    assert "ERR_HUB_NOT_FOUND (8)" in line
    # A pinned certificate that does not match: refused before the password is sent.
    line = one_line_error(vpnctl(srv, "--pin-sha256", "00" * 32, "HubList"), 3)
    assert "does not match" in line


def test_certificate_pin_accepts_the_right_fingerprint(softether_server):
    srv = softether_server
    pem = ssl.get_server_certificate((srv.host, srv.port))
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    assert ok(vpnctl(srv, "--pin-sha256", fingerprint.upper(), "HubList"))


def test_server_password_set(softether_server):
    srv = softether_server
    ok(vpnctl(srv, "ServerPasswordSet", "n3w-pw"))
    one_line_error(vpnctl(srv, "HubList", password=srv.password), 4)
    ok(vpnctl(srv, "HubList", password="n3w-pw"))
    # beyond ASCII: SoftEther hashes the header's raw bytes, vpnctl sends UTF-8
    ok(vpnctl(srv, "ServerPasswordSet", "pässwört-密码", password="n3w-pw"))
    ok(vpnctl(srv, "HubList", password="pässwört-密码"))


def test_cluster_controller_then_standalone(softether_server):
    srv = softether_server
    ok(vpnctl(srv, "ClusterSettingController", "/WEIGHT:200", "/ONLY:no"))
    srv.wait_admin(server_type=SERVER_TYPE_CONTROLLER)  # SoftEther restarts itself
    setting = ok(vpnctl(srv, "ClusterSettingGet"))
    assert item(setting, "Current Setting") == "Cluster Controller"
    assert item(setting, "Weight") == "200"
    assert item(setting, "Controller Functions Only") == "No"

    members = ok_json(srv, "ClusterMemberList")["FarmMemberList"]
    assert len(members) == 1 and members[0]["Controller_bool"] is True
    assert members[0]["Hostname_str"] == srv.name
    rows = table_rows(ok(vpnctl(srv, "ClusterMemberList")))
    assert rows[0][1:2] == ["Controller"] and rows[0][3] == srv.name
    info = ok(vpnctl(srv, "ClusterMemberInfoGet", str(members[0]["Id_u32"])))
    assert item(info, "Type") == "Cluster Controller"
    one_line_error(vpnctl(srv, "ClusterMemberInfoGet", "4294967295"), 1)

    ok(vpnctl(srv, "HubCreate", "dyn"))  # dynamic by default on a controller
    ok(vpnctl(srv, "HubCreateStatic", "st"))
    types = {h["HubName_str"]: h["HubType_u32"] for h in ok_json(srv, "HubList")["HubList"]}
    assert types == {"dyn": 2, "st": 1}
    one_line_error(vpnctl(srv, "ClusterConnectionStatusGet"), 1)  # not a member

    ok(vpnctl(srv, "ClusterSettingStandalone"))
    srv.wait_admin(server_type=SERVER_TYPE_STANDALONE)
    assert item(ok(vpnctl(srv, "ClusterSettingGet")), "Current Setting") == "Standalone Server"
    one_line_error(vpnctl(srv, "ClusterMemberList"), 1)


def test_cluster_member_joins_controller(softether_lab, tmp_path):
    ctl = softether_lab.server(f"ctl-{os.getpid()}", password="ctl-pw")
    member = softether_lab.server(f"m1-{os.getpid()}")
    ok(vpnctl(ctl, "ClusterSettingController"))
    ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
    ok(
        vpnctl(
            member,
            "ClusterSettingMember",
            ctl.address,
            "/IP:127.0.0.1",
            f"/PORTS:{member.port}",
            "/PASSWORD:ctl-pw",
            "/WEIGHT:50",
        )
    )
    member.wait_admin(server_type=SERVER_TYPE_MEMBER)
    status = _wait_for(lambda: ok_json(member, "ClusterConnectionStatusGet"), lambda s: s["Online_bool"])
    assert status["Port_u32"] == ctl.port
    assert item(ok(vpnctl(member, "ClusterConnectionStatusGet")), "Connection Status") == "Online"
    setting = ok(vpnctl(member, "ClusterSettingGet"))
    assert item(setting, "Controller") == ctl.address
    assert item(setting, "Public Port List") == str(member.port)
    assert item(setting, "Weight") == "50"

    members = _wait_for(lambda: ok_json(ctl, "ClusterMemberList")["FarmMemberList"], lambda m: len(m) == 2)
    joined = next(m for m in members if not m["Controller_bool"])
    assert joined["Hostname_str"] == member.name
    info = ok(vpnctl(ctl, "ClusterMemberInfoGet", str(joined["Id_u32"])))
    assert item(info, "Host Name") == member.name
    assert item(info, "Public Port #1") == str(member.port)
    assert item(info, "Weight") == "50"
    cert_file = tmp_path / "member.pem"
    ok(vpnctl(ctl, "ClusterMemberCertGet", str(joined["Id_u32"]), f"/SAVECERT:{cert_file}"))
    member_pem = ssl.get_server_certificate((member.host, member.port))
    assert ssl.PEM_cert_to_DER_cert(cert_file.read_text()) == ssl.PEM_cert_to_DER_cert(member_pem)
    # Hubs are managed on the controller only.
    line = one_line_error(vpnctl(member, "HubCreate", "x"), 1)
    assert "(46)" in line


def _wait_for(fetch, done, attempts: int = 100):
    """Poll `fetch` (about 0.1 s apart, bounded) until `done(value)`."""
    value = None
    for _ in range(attempts):
        value = fetch()
        if done(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not reached; last value: {value!r}")


@pytest.mark.root
def test_sessions_and_tables_of_a_real_client(softether_lab):
    """A real SoftEther client connects (server and client share one network
    namespace); vpnctl shows its session, MAC and IP entries, then kicks it."""
    reason = root_skip_reason() or skip_reason(need_client=True)
    if reason:
        pytest.skip(reason)
    with Lab() as net:
        ns = net.netns("sess")
        srv = softether_lab.server(f"srv-{os.getpid()}", netns=ns)
        ok(vpnctl(srv, "HubCreate", "lan"))
        ok(vpnctl(srv, "UserCreate", "carol", hub="lan"))
        ok(vpnctl(srv, "UserPasswordSet", "carol", "/PASSWORD:pw", hub="lan"))
        client = softether_lab.client(ns)
        client.must("NicCreate", "vpn1")
        client.must("AccountCreate", "a1", f"/SERVER:{srv.address}", "/HUB:lan", "/USERNAME:carol", "/NICNAME:vpn1")
        client.must("AccountPasswordSet", "a1", "/PASSWORD:pw", "/TYPE:standard")
        client.must("AccountConnect", "a1")
        sessions = _wait_for(lambda: ok_json(srv, "SessionList", hub="lan")["SessionList"], lambda s: len(s) == 1)
        name = sessions[0]["Name_str"]
        assert sessions[0]["Username_str"] == "carol" and name.startswith("SID-CAROL-")
        row = table_rows(ok(vpnctl(srv, "SessionList", hub="lan")))[0]
        assert row[0] == name and row[2] == "Local Session" and row[3] == "carol"
        detail = ok(vpnctl(srv, "SessionGet", name, hub="lan"))
        assert item(detail, "User Name") == "carol"
        # The TAP device going up makes the kernel send IPv6 ND frames: the hub learns its MAC.
        subprocess.run(["ip", "-n", ns, "link", "set", "vpn_vpn1", "up"], check=True)
        macs = _wait_for(lambda: ok_json(srv, "MacTable", hub="lan")["MacTable"], lambda m: len(m) >= 1)
        assert macs[0]["SessionName_str"] == name
        mac_text = ok(vpnctl(srv, "MacTable", name, hub="lan"))
        assert table_rows(mac_text)[0][1] == name
        assert len(table_rows(mac_text)[0][3].split("-")) == 6
        ips = _wait_for(lambda: ok_json(srv, "IpTable", hub="lan")["IpTable"], lambda t: len(t) >= 1)
        assert ips[0]["SessionName_str"] == name
        ok(vpnctl(srv, "IpTable", hub="lan"))
        ok(vpnctl(srv, "SessionDisconnect", name, hub="lan"))
        _wait_for(
            lambda: ok_json(srv, "SessionList", hub="lan")["SessionList"],
            lambda s: all(x["Name_str"] != name for x in s),
        )
        line = one_line_error(vpnctl(srv, "SessionGet", name, hub="lan"), 1)
        assert "(29)" in line or "(11)" in line
        softether_lab.stop_all()  # before the namespace goes away


@pytest.mark.root
def test_local_bridges(softether_lab):
    """BridgeCreate/List/Delete on an existing veth and on a new TAP device."""
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    with Lab() as net:
        ns = net.netns("br")
        dev, _peer = net.veth(ns, ns)
        srv = softether_lab.server(f"br-{os.getpid()}", netns=ns)
        ok(vpnctl(srv, "HubCreate", "lan"))
        ok(vpnctl(srv, "BridgeCreate", "lan", f"/DEVICE:{dev}"))
        ok(vpnctl(srv, "BridgeCreate", "lan", "/DEVICE:t1", "/TAP:yes"))
        bridges = _wait_for(
            lambda: ok_json(srv, "BridgeList")["LocalBridgeList"],
            lambda b: len(b) == 2 and all(x["Active_bool"] for x in b),
        )
        assert {(b["HubNameLB_str"], b["DeviceName_str"], b["TapMode_bool"]) for b in bridges} == {
            ("lan", dev, False),
            ("lan", "t1", True),
        }
        rows = table_rows(ok(vpnctl(srv, "BridgeList")))
        assert sorted((r[1], r[2], r[3]) for r in rows) == sorted([("lan", dev, "Operating"), ("lan", "t1", "Operating")])
        links = subprocess.run(["ip", "-n", ns, "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert "tap_t1" in links  # SoftEther's name for the TAP device of /DEVICE:t1
        ok(vpnctl(srv, "BridgeDelete", "lan", "/DEVICE:t1"))
        ok(vpnctl(srv, "BridgeDelete", "lan", f"/DEVICE:{dev}"))
        assert ok_json(srv, "BridgeList")["LocalBridgeList"] == []
        one_line_error(vpnctl(srv, "BridgeDelete", "lan", f"/DEVICE:{dev}"), 1)
        softether_lab.stop_all()  # before the namespace goes away


def test_cluster_member_with_wrong_password(softether_lab):
    """A member with the wrong controller password stays offline and says why."""
    ctl = softether_lab.server(f"ctlw-{os.getpid()}")
    member = softether_lab.server(f"mw-{os.getpid()}")
    ok(vpnctl(ctl, "ClusterSettingController"))
    ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
    ok(vpnctl(member, "csm", ctl.address, f"/PORTS:{member.port}", "/PASSWORD:not-the-admin-pw"))
    member.wait_admin(server_type=SERVER_TYPE_MEMBER)
    status = _wait_for(lambda: ok_json(member, "ClusterConnectionStatusGet"), lambda s: s["NumFailed_u32"] >= 1)
    assert status["Online_bool"] is False and status["LastError_u32"] == 12  # ERR_ACCESS_DENIED
    text = ok(vpnctl(member, "ClusterConnectionStatusGet"))
    assert item(text, "Connection Status") == "Offline"
    assert item(text, "Controller IP Address") == "Not Connected"
    assert item(text, "Last Error").startswith("ERR_ACCESS_DENIED (12)")
    assert len(ok_json(ctl, "ClusterMemberList")["FarmMemberList"]) == 1
    # The setting never shows the password back.
    setting = ok_json(member, "ClusterSettingGet")
    assert setting["MemberPasswordPlaintext_str"] == "" and base64.b64decode(setting["MemberPassword_bin"]) == bytes(20)


def test_hub_types_and_unavailable_functions_on_a_real_cluster(softether_lab):
    """What SoftEther 5.01 does with hub types and with the functions a cluster
    cannot use (CLUSTERING.md §3.9.7, §3.9.8, §3.9.11), seen through vpnctl:
    StSetHub refuses a type change (ERR_NOT_SUPPORTED); a member lists its
    static hubs and only the dynamic hubs it hosts (none without sessions);
    cascades answer ERR_NOT_SUPPORTED on a controller and on a member."""
    ctl = softether_lab.server(f"ctlt-{os.getpid()}", password="ctl-pw")
    member = softether_lab.server(f"mt-{os.getpid()}")
    ok(vpnctl(ctl, "ClusterSettingController"))
    ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
    ok(vpnctl(member, "ClusterSettingMember", ctl.address, "/IP:127.0.0.1", f"/PORTS:{member.port}",
              "/PASSWORD:ctl-pw"))
    member.wait_admin(server_type=SERVER_TYPE_MEMBER)
    _wait_for(lambda: ok_json(member, "ClusterConnectionStatusGet"), lambda s: s["Online_bool"])
    ok(vpnctl(ctl, "HubCreateDynamic", "dyn"))
    ok(vpnctl(ctl, "HubCreateStatic", "st"))

    # A hub's type never changes after creation (StSetHub).
    for verb, hub in (("HubSetStatic", "dyn"), ("HubSetDynamic", "st")):
        assert "ERR_NOT_SUPPORTED (33)" in one_line_error(vpnctl(ctl, verb, hub), 1)
    types = {h["HubName_str"]: h["HubType_u32"] for h in ok_json(ctl, "HubList")["HubList"]}
    assert types == {"dyn": 2, "st": 1}
    # On a member the hub commands are the controller's (StGetHub: ERR_NOT_FARM_CONTROLLER).
    assert "(46)" in one_line_error(vpnctl(member, "HubSetStatic", "dyn"), 1)

    # The controller lists both hubs; the member only the static one (a
    # dynamic hub exists on a member only while it hosts sessions of it).
    rows = table_rows(ok(vpnctl(ctl, "HubList")))
    assert sorted(r[:3] for r in rows) == [["dyn", "Online", "Dynamic"], ["st", "Online", "Static"]]
    listed = _wait_for(lambda: ok_json(member, "HubList")["HubList"], lambda h: len(h) >= 1)
    assert [(h["HubName_str"], h["HubType_u32"], h["Online_bool"]) for h in listed] == [("st", 1, True)]
    status = ok_json(member, "ServerStatusGet")
    assert (status["NumHubTotal_u32"], status["NumHubStatic_u32"], status["NumHubDynamic_u32"]) == (1, 1, 0)
    status = ok_json(ctl, "ServerStatusGet")
    assert (status["NumHubTotal_u32"], status["NumHubStatic_u32"], status["NumHubDynamic_u32"]) == (2, 1, 1)

    # Cascades: ERR_NOT_SUPPORTED in both cluster modes (StEnumLink).
    for srv in (ctl, member):
        assert "ERR_NOT_SUPPORTED (33)" in one_line_error(vpnctl(srv, "CascadeList", hub="st"), 1)
    # SecureNAT: never on a static hub (33); a member does not have the
    # dynamic hub (8); SoftEther allows it on a controller's dynamic hub.
    assert "ERR_NOT_SUPPORTED (33)" in one_line_error(vpnctl(ctl, "SecureNatEnable", hub="st"), 1)
    assert "ERR_NOT_SUPPORTED (33)" in one_line_error(vpnctl(member, "SecureNatEnable", hub="st"), 1)
    assert "ERR_HUB_NOT_FOUND (8)" in one_line_error(vpnctl(member, "SecureNatEnable", hub="dyn"), 1)
    ok(vpnctl(ctl, "SecureNatEnable", hub="dyn"))
    ok(vpnctl(ctl, "SecureNatDisable", hub="dyn"))


def test_cascade_and_securenat_verbs_on_a_standalone_server(softether_server):
    srv = softether_server
    ok(vpnctl(srv, "HubCreate", "sa"))
    assert ok_json(srv, "CascadeList", hub="sa")["LinkList"] == []
    ok(vpnctl(srv, "CascadeList", hub="sa"))
    ok(vpnctl(srv, "SecureNatEnable", hub="sa"))
    status = ok(vpnctl(srv, "SecureNatStatusGet", hub="sa"))
    assert item(status, "Virtual Hub Name") == "sa"
    ok(vpnctl(srv, "SecureNatDisable", hub="sa"))
    assert "ERR_HUB_NOT_FOUND (8)" in one_line_error(vpnctl(srv, "CascadeList", hub="nohub"), 1)
