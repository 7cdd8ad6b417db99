"""Debian's real vpncmd administers vpnd through SoftEther's binary admin RPC.

Every command runs twice, as an operator's script would, against our vpnd
and against a real SoftEther 5.01 VPN Server configured the same way, both
on loopback; vpncmd runs non-interactively (`/CMD ...`, `/IN:script`) from
a directory of the test's own, with `/CSV` so each output is a table. The
two outputs are compared field by field (`same_output`): every field the
real server prints must be printed by ours, with an equal value once the
names that differ by construction (host names, ports, device names) are
replaced by placeholders. Fields whose value is volatile (times, counters
of live sockets) are compared by shape, the product and OS strings only by
presence (SHAPES), and the few known differences are named with their
reason where they occur (USER_TRAFFIC, OURS_ONLY, the `allowed` argument).

Needs root and Debian's softether-vpnserver/vpncmd (skipped otherwise). One
vpnd and one SoftEther server are shared by the module (`pair`), each test
making the hubs it needs under its own names, so any test passes alone; the
cluster test builds its own two-node clusters.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from node.softether.pack import Pack
from node.softether.sha0 import hash_password
from tests.admin_rpc_client import admin_connection, call, closed_by_peer
from tests.softether_lab import (
    SERVER_TYPE_CONTROLLER,
    SERVER_TYPE_MEMBER,
    SoftEtherLab,
    SoftEtherServer,
    require_softether,
)
from tests.vpnd_proc import Vpnd
from tools.vpndrill.lab.netns import root_skip_reason
from tools.vpndrill.lab.softether import VPNCMD

pytestmark = [pytest.mark.softether, pytest.mark.timeout(240)]

PW = "vpncmd-admin-pw"
VPNCMD_TIMEOUT_S = 30.0

TIME = re.compile(r"^\d{4}-\d\d-\d\d( \(\w{3}\))? \d\d:\d\d:\d\d(\.\d{3})?$")
NUMBER = re.compile(r"^[\d,]+( packets| bytes)?$")


@dataclass
class Side:
    """One server as vpncmd sees it: address, password, and the values that
    differ from the other side by construction (replaced by placeholders)."""

    label: str
    port: int
    password: str
    workdir: Path
    names: dict[str, str] = field(default_factory=dict)
    """actual text → placeholder (host names, ports, device names)."""

    def vpncmd(self, *words: str, hub: str | None = None, admin_hub: str | None = None,
               password: str | None = None, options: tuple[str, ...] = ("/CSV",),
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`vpncmd 127.0.0.1:PORT /SERVER /PASSWORD:.. [/HUB:|/ADMINHUB:] OPTIONS [/CMD words]`."""
        cmd = [str(VPNCMD), f"127.0.0.1:{self.port}", "/SERVER", f"/PASSWORD:{password or self.password}"]
        cmd += [f"/HUB:{hub}"] if hub else []
        cmd += [f"/ADMINHUB:{admin_hub}"] if admin_hub else []
        cmd += list(options)
        cmd += ["/CMD", *words] if words else []
        return subprocess.run(cmd, capture_output=True, text=True, timeout=VPNCMD_TIMEOUT_S, cwd=self.workdir,
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)

    def normal(self, text: str) -> str:
        for actual, placeholder in sorted(self.names.items(), key=lambda kv: -len(kv[0])):
            text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(actual)}(?![0-9A-Za-z])", placeholder, text)
        return text


# Fields compared by shape only (None: any value): their values depend on the
# moment, the machine or the product, not on the configuration.
SHAPES: dict[str, re.Pattern[str] | None] = {
    "Product Name": None, "Version": None, "Build": None,
    "Product Name of Operating System": None, "Operating System Vendor": None,
    "Operating System Version": None, "Type of OS Kernel": None, "Version of OS Kernel": None,
    "Server Started at": TIME, "Current Time": TIME, "Created on": TIME, "Updated on": TIME,
    "Created at": TIME, "Last Login": TIME, "Last Communication": TIME, "Connection Started at": TIME,
    "Connection Established at": TIME, "Connection Start": TIME,
    "First Connection Established at": TIME,
    "Current Connection Established at": TIME,
    "64 bit High-Precision Logical System Clock": NUMBER, "Number of Active Sockets": NUMBER,
    "Number of TCP Connections": NUMBER,
    # live counters of the hub's own traffic (a TAP device sends router solicitations)
    **{f"{d} {k} {u}": NUMBER for d in ("Outgoing", "Incoming") for k in ("Unicast", "Broadcast")
       for u in ("Packets", "Total Size")},
    "MAC Tables": NUMBER,
}
# Known differences, each with its reason (passed to the calls they concern).
USER_TRAFFIC: dict[str, str] = {
    "Transfer Bytes": "vpnd counts traffic per hub, not per user: UserList shows '-' (not counted), SoftEther 0",
    "Transfer Packets": "as Transfer Bytes",
}
# Rows only vpnd prints: SoftEther on Linux reports no memory figures (0), so vpncmd hides them.
OURS_ONLY = {f"{k} {m} Memory Size" for k in ("Total", "Used", "Free") for m in ("Logical", "Physical")}


def table(res: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    """A `/CSV` output as rows; an Item,Value table becomes one row keyed by item."""
    rows = [r for r in csv.reader(io.StringIO(res.stdout)) if r]
    if not rows:
        return []
    if rows[0] == ["Item", "Value"]:
        return [{item: value for item, value, *_ in rows[1:] if item != "---"}]
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def same_output(ours: Side, theirs: Side, res_ours: subprocess.CompletedProcess[str],
                res_theirs: subprocess.CompletedProcess[str], what: str,
                allowed: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Assert the two vpncmd runs agree (exit code, then field by field); returns our rows."""
    assert res_ours.returncode == res_theirs.returncode, (
        f"{what}: exit {res_ours.returncode} (ours) vs {res_theirs.returncode} (SoftEther)\n"
        f"ours: {res_ours.stdout[-600:]}\nSoftEther: {res_theirs.stdout[-600:]}")
    if res_theirs.returncode != 0:  # an error: the same message
        assert ours.normal(res_ours.stdout).strip() == theirs.normal(res_theirs.stdout).strip(), what
        return []
    rows_ours, rows_theirs = table(res_ours), table(res_theirs)
    assert len(rows_ours) == len(rows_theirs), f"{what}: {rows_ours} vs {rows_theirs}"
    differences = allowed or {}
    for mine, real in zip(rows_ours, rows_theirs):
        extra = set(mine) - set(real) - OURS_ONLY
        assert not extra, f"{what}: fields only we print: {sorted(extra)}"
        for name, value in real.items():
            assert name in mine, f"{what}: field {name!r} missing from ours"
            got, want = ours.normal(mine[name]), theirs.normal(value)
            if name in differences or got == want:
                continue
            shape = SHAPES.get(name, False)
            assert shape is not False, f"{what}: {name!r} is {got!r}, SoftEther says {want!r}"
            if isinstance(shape, re.Pattern):
                assert shape.match(got) and shape.match(want), f"{what}: {name!r}: {got!r} / {want!r}"
    return rows_ours


@dataclass
class Pair:
    ours: Side
    theirs: Side
    vpnd: Vpnd
    softether: SoftEtherServer

    def both(self, *words: str, what: str = "", allowed: dict[str, str] | None = None,
             **kw) -> list[dict[str, str]]:
        """Run one vpncmd command on both servers and compare."""
        res_ours, res_theirs = self.ours.vpncmd(*words, **kw), self.theirs.vpncmd(*words, **kw)
        return same_output(self.ours, self.theirs, res_ours, res_theirs, what or " ".join(words), allowed)

    def ensure_hub(self, name: str, password: str) -> None:
        for side in (self.ours, self.theirs):
            res = side.vpncmd("HubCreate", name, f"/PASSWORD:{password}")
            assert res.returncode in (0, 35), res.stdout  # 35: ERR_HUB_ALREADY_EXISTS (an earlier test)


def _side(label: str, port: int, password: str, workdir: Path, names: dict[str, str]) -> Side:
    workdir.mkdir(parents=True, exist_ok=True)
    return Side(label, port, password, workdir, {str(port): "<port>", **names})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    require_softether()
    base = tmp_path_factory.mktemp("vpncmd")
    with SoftEtherLab() as lab:
        softether = lab.server(f"se-vpncmd-{os.getpid()}", password=PW)
        vpnd = Vpnd(base / "vpnd", password=PW).start()
        try:
            yield Pair(ours=_side("vpnd", vpnd.port, PW, base / "run-ours", {socket.gethostname(): "<host>"}),
                       theirs=_side("SoftEther", softether.port, PW, base / "run-theirs",
                                    {softether.name: "<host>"}),
                       vpnd=vpnd, softether=softether)
        finally:
            vpnd.stop()


def test_server_info_and_status(pair):
    info = pair.both("ServerInfoGet")[0]
    assert info["Server Type"] == "Standalone Server" and info["Host Name"] == socket.gethostname()
    pair.both("ServerStatusGet")
    for side in (pair.ours, pair.theirs):  # nothing to write on vpnd (always on disk): it says the size
        res = side.vpncmd("Flush")
        assert res.returncode == 0 and re.search(r"The file size is [\d,]+ bytes", res.stdout), res.stdout


def test_hubs(pair):
    pair.ensure_hub("hubs-a", "hp")
    pair.both("HubCreate", "hubs-b", "/PASSWORD:hp2")
    pair.both("HubCreate", "hubs-b", "/PASSWORD:hp2", what="HubCreate of an existing hub")  # error 35
    # a standalone server has no static or dynamic hubs: both refuse (38)
    pair.both("HubCreateStatic", "hubs-s", "/PASSWORD:p")
    pair.both("HubCreateDynamic", "hubs-d", "/PASSWORD:p")
    rows = pair.both("HubList")
    assert {r["Virtual Hub Name"] for r in rows} >= {"hubs-a", "hubs-b"}
    pair.both("StatusGet", admin_hub="hubs-a")


def test_users(pair):
    pair.ensure_hub("users", "hp")
    pair.both("UserCreate", "alice", "/GROUP:none", "/REALNAME:Alice A", "/NOTE:note: x", admin_hub="users")
    pair.both("UserCreate", "bob", "/GROUP:none", "/REALNAME:none", "/NOTE:none", admin_hub="users")
    pair.both("UserPasswordSet", "alice", "/PASSWORD:s3cret", admin_hub="users")
    rows = pair.both("UserList", admin_hub="users", allowed=USER_TRAFFIC)
    assert [r["User Name"] for r in rows] == ["alice", "bob"]
    pair.both("UserGet", "alice", admin_hub="users")
    # UserPasswordSet really set the password (vpncmd hashes it client-side): SoftEther
    # shows the hash through GetUser, vpnd keeps it only in its state file
    user = pair.softether.rpc("GetUser", {"HubName_str": "users", "Name_str": "alice"})
    assert base64.b64decode(user["HashedKey_bin"]) == hash_password("alice", "s3cret")
    state = json.loads((pair.vpnd.state_dir / "vpnd.config.json").read_text())
    users = {u["name"]: u for h in state["hubs"] if h["name"] == "users" for u in h["users"]}
    assert bytes.fromhex(users["alice"]["hashed_key"]) == hash_password("alice", "s3cret")
    pair.both("UserGet", "nobody", admin_hub="users")  # error 29 on both


def test_commands_for_what_vpnd_lacks_get_the_usual_unsupported_error(pair):
    pair.ensure_hub("lacks", "hp")
    for words in (("GroupList",), ("AccessList",), ("SecureNatEnable",), ("LogGet",)):
        res = pair.ours.vpncmd(*words, admin_hub="lacks")
        assert (res.returncode, res.stdout) == (33, "Error occurred. (Error code: 33)\nUnsupported.\n"), words
    for words in (("ConfigGet",), ("RouterList",)):
        assert pair.ours.vpncmd(*words).returncode == 33, words


def test_listener_list(pair):
    # each server listens on its one port (shown as <port>)
    assert [r["Status"] for r in pair.both("ListenerList")] == ["Listening"]


def test_sessions(pair):
    pair.ensure_hub("sessions", "hp")
    assert pair.both("SessionList", admin_hub="sessions") == []


@pytest.mark.root
def test_bridges(pair):
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    pair.ensure_hub("bridges", "hp")
    tag = os.getpid() % 10000
    dev_ours, dev_theirs = f"v11o{tag}", f"v11s{tag}"  # each side makes its own TAP device
    pair.ours.names[dev_ours] = pair.theirs.names[dev_theirs] = "<dev>"
    try:
        for side, dev in ((pair.ours, dev_ours), (pair.theirs, dev_theirs)):
            res = side.vpncmd("BridgeCreate", "bridges", f"/DEVICE:{dev}", "/TAP:yes")
            assert res.returncode == 0, res.stdout
        deadline = time.monotonic() + 20
        while True:
            rows = pair.both("BridgeList", what="BridgeList while starting", allowed={"Status": "starting"})
            if all(r["Status"] == "Operating" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = pair.both("BridgeList")
        assert [(r["Virtual Hub Name"], r["Status"]) for r in rows] == [("bridges", "Operating")]
        pair.both("SessionList", admin_hub="bridges",
                  allowed={"Transfer Bytes": "live traffic of the TAP device", "Transfer Packets": "as bytes"})
    finally:  # the hub goes too: its live traffic would show in other tests' HubList
        for side, dev in ((pair.ours, dev_ours), (pair.theirs, dev_theirs)):
            side.vpncmd("BridgeDelete", "bridges", f"/DEVICE:{dev}")
            side.vpncmd("HubDelete", "bridges")


def test_hub_administrator_is_confined_to_its_hub(pair):
    pair.ensure_hub("ha-own", "hub-pw")
    pair.ensure_hub("ha-other", "other-pw")
    rows = pair.both("HubList", hub="ha-own", password="hub-pw")
    assert [r["Virtual Hub Name"] for r in rows] == ["ha-own"]
    pair.both("UserCreate", "carol", "/GROUP:none", "/REALNAME:none", "/NOTE:none", hub="ha-own", password="hub-pw")
    users = pair.both("UserList", hub="ha-own", password="hub-pw", allowed=USER_TRAFFIC)
    assert [r["User Name"] for r in users] == ["carol"]
    for words in (("Hub", "ha-other"), ("HubCreate", "ha-new", "/PASSWORD:x"), ("HubDelete", "ha-other"),
                  ("UserList",), ("StatusGet",)):
        pair.both(*words, hub="ha-own", password="hub-pw", allowed=USER_TRAFFIC)
    res = pair.ours.vpncmd("Hub", "ha-other", hub="ha-own", password="hub-pw")
    assert res.returncode == 52, res.stdout  # ERR_NOT_ENOUGH_RIGHT
    # A difference on purpose: SoftEther shows a hub administrator the whole
    # server's status, local bridges and cluster setting; vpnd keeps
    # server-wide views for the server administrator (as its JSON-RPC API does).
    for verb in ("ServerStatusGet", "BridgeList", "ClusterSettingGet"):
        assert pair.ours.vpncmd(verb, hub="ha-own", password="hub-pw").returncode == 52
        assert pair.theirs.vpncmd(verb, hub="ha-own", password="hub-pw").returncode == 0
    # a wrong hub password, and a hub that does not exist
    pair.both("UserList", hub="ha-own", password="wrong", options=("/CSV", "/PROGRAMMING"))
    pair.both("UserList", hub="ha-none", password="x", options=("/CSV", "/PROGRAMMING"))


def test_wrong_password(pair):
    res = pair.ours.vpncmd("ServerInfoGet", password="wrong", options=("/PROGRAMMING",))
    assert res.returncode == 12 and "Access has been denied" in res.stdout
    pair.both("ServerInfoGet", password="wrong", options=("/CSV", "/PROGRAMMING"))
    # interactively vpncmd asks again; the right password then works
    ours, theirs = (side.vpncmd("ServerInfoGet", password="wrong", options=(), stdin=PW + "\n")
                    for side in (pair.ours, pair.theirs))
    assert ours.returncode == theirs.returncode == 0, ours.stdout
    for res in (ours, theirs):
        assert "Password: " in res.stdout and "The command completed successfully." in res.stdout


def test_script_with_in(pair):
    pair.ensure_hub("script", "hp")
    outputs = {}
    for side in (pair.ours, pair.theirs):
        script = side.workdir / "commands.txt"
        script.write_text("StatusGet\nUserCreate dave /GROUP:none /REALNAME:none /NOTE:none\n"
                          "UserGet dave\nUserDelete dave\n")
        res = side.vpncmd(admin_hub="script", options=(f"/IN:{script}",))
        assert res.returncode == 0, res.stdout
        outputs[side.label] = _banner_free(side.normal(res.stdout))
    assert outputs["vpnd"] == outputs["SoftEther"]


def _banner_free(text: str) -> str:
    """vpncmd's output without its version banner and the volatile columns."""
    text = text.split("Connection has been established", 1)[-1]
    return re.sub(r"\d{4}-\d\d-\d\d( \(\w{3}\))? \d\d:\d\d:\d\d", "<time>", text)


# ---- raw frames: garbage and truncated calls close only their own connection ----

NO_NAME = Pack()
NO_NAME.add_int("IntValue", 1)  # a call without function_name
BAD_FRAMES: dict[str, bytes] = {
    "oversized length": struct.pack(">I", 0xFFFFFFF0),
    "garbage PACK": struct.pack(">I", 12) + b"\xff" * 12,
}


@pytest.mark.parametrize("kind", sorted(BAD_FRAMES))
def test_bad_frames_close_only_their_connection(pair, kind):
    for side in (pair.ours, pair.theirs):
        bystander = admin_connection(side.port, side.password)
        assert call(bystander, "Test").get_int("error") == 0
        # an unknown method, or none, is an error reply (33), not a closed connection
        assert call(bystander, "NoSuchMethod").get_int("error") == 33
        assert call(bystander, "", NO_NAME).get_int("error") == 33
        bad = admin_connection(side.port, side.password)
        bad.sendall(BAD_FRAMES[kind])
        assert closed_by_peer(bad), f"{side.label} kept a connection after {kind}"
        bad.close()
        truncated = admin_connection(side.port, side.password)
        truncated.sendall(struct.pack(">I", 1000) + b"\0" * 10)  # and then the client goes away
        truncated.close()
        assert call(bystander, "Test").get_int("error") == 0, side.label
        bystander.close()
    pair.both("ServerInfoGet", what=f"ServerInfoGet after {kind}")


# ---- clusters built by vpncmd ---------------------------------------------------------

def test_cluster_built_with_vpncmd(pair, tmp_path):
    ctl_pw, member_pw = "ctl-pw", "member-pw"
    lab = SoftEtherLab(tmp_path / "se")
    with lab:
        se_ctl = lab.server(f"se-ctl-{os.getpid()}", password=ctl_pw)
        se_member = lab.server(f"se-mb-{os.getpid()}", password=member_pw)
        our_ctl = Vpnd(tmp_path / "ctl", password=ctl_pw).start()
        our_member = Vpnd(tmp_path / "member", password=member_pw).start()
        try:
            host = socket.gethostname()
            se_names = {se_ctl.name: "<host>", se_member.name: "<host>"}
            sides = {
                "ours": (_side("vpnd", our_ctl.port, ctl_pw, tmp_path / "o", {host: "<host>"}),
                         _side("vpnd", our_member.port, member_pw, tmp_path / "o", {host: "<host>"})),
                "theirs": (_side("SoftEther", se_ctl.port, ctl_pw, tmp_path / "t", dict(se_names)),
                           _side("SoftEther", se_member.port, member_pw, tmp_path / "t", dict(se_names))),
            }
            for key in sides:  # each member names its controller's port and its own
                ctl, member = sides[key]
                ctl.names[str(member.port)] = member.names[str(member.port)] = "<member-port>"
                member.names[str(ctl.port)] = "<port>"
            (o_ctl, o_member), (t_ctl, t_member) = sides["ours"], sides["theirs"]

            def both(ours: Side, theirs: Side, *words: str, allowed: dict[str, str] | None = None,
                     **kw) -> list[dict[str, str]]:
                return same_output(ours, theirs, ours.vpncmd(*words, **kw), theirs.vpncmd(*words, **kw),
                                   " ".join(words), allowed)

            both(o_ctl, t_ctl, "ClusterSettingController", "/WEIGHT:100", "/ONLY:no")
            se_ctl.wait_admin(server_type=SERVER_TYPE_CONTROLLER)
            _wait_setting(o_ctl, "Cluster Controller")
            for ctl, member in ((o_ctl, o_member), (t_ctl, t_member)):
                res = member.vpncmd("ClusterSettingMember", f"127.0.0.1:{ctl.port}", "/IP:127.0.0.1",
                                    f"/PORTS:{member.port}", f"/PASSWORD:{ctl_pw}", "/WEIGHT:100", options=("/CSV",))
                assert res.returncode == 0, res.stdout
            se_member.wait_admin(server_type=SERVER_TYPE_MEMBER)
            for ctl in (o_ctl, t_ctl):
                _wait_members(ctl, 2)
            both(o_member, t_member, "ClusterSettingGet")
            both(o_member, t_member, "ClusterConnectionStatusGet")
            both(o_ctl, t_ctl, "ClusterConnectionStatusGet")  # not a member: 55 on both
            rows = both(o_ctl, t_ctl, "ClusterMemberList", allowed={"ID": "member ids are opaque"})
            assert [r["Type"] for r in rows] == ["Controller", "Member"]
            ids = [_member_id(side) for side in (o_ctl, t_ctl)]
            same_output(o_ctl, t_ctl, o_ctl.vpncmd("ClusterMemberInfoGet", ids[0]),
                        t_ctl.vpncmd("ClusterMemberInfoGet", ids[1]), "ClusterMemberInfoGet")
            both(o_ctl, t_ctl, "ClusterMemberInfoGet", "4294967295")  # unknown id: 29 on both
            for ctl, member, member_id in ((o_ctl, o_member, ids[0]), (t_ctl, t_member, ids[1])):
                saved = ctl.workdir / f"member-{member.port}.cer"
                res = ctl.vpncmd("ClusterMemberCertGet", member_id, f"/SAVECERT:{saved}")
                assert res.returncode == 0, res.stdout
                presented = ssl.get_server_certificate(("127.0.0.1", member.port))
                assert ssl.PEM_cert_to_DER_cert(saved.read_text()) == ssl.PEM_cert_to_DER_cert(presented)
            both(o_ctl, t_ctl, "HubCreateStatic", "st", "/PASSWORD:sp")
            both(o_ctl, t_ctl, "HubCreateDynamic", "dy", "/PASSWORD:dp")
            both(o_ctl, t_ctl, "HubList", allowed={
                "Transfer Bytes": "a dynamic hub not running on the controller: vpnd shows '-' (not counted here)",
                "Transfer Packets": "as Transfer Bytes"})
            both(o_member, t_member, "HubCreate", "x", "/PASSWORD:x")  # 46 on a member
            # a hub administrator logs in on the controller, never on a member (52)
            both(o_member, t_member, "UserList", hub="st", password="sp", options=("/CSV", "/PROGRAMMING"))
            both(o_ctl, t_ctl, "UserList", hub="st", password="sp")
        finally:
            our_ctl.stop()
            our_member.stop()


def _wait_setting(side: Side, wanted: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = table(side.vpncmd("ClusterSettingGet"))
        if rows and rows[0].get("Current Configuration") == wanted:
            return
        time.sleep(0.3)
    raise AssertionError(f"{side.label} is not {wanted} after {timeout_s} s")


def _wait_members(side: Side, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(table(side.vpncmd("ClusterMemberList"))) == count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{side.label}: the member did not join within {timeout_s} s")


def _member_id(ctl: Side) -> str:
    return next(r["ID"] for r in table(ctl.vpncmd("ClusterMemberList")) if r["Type"] == "Member")



# A connection's name counts every connection since the server started, and
# vpnd does no reverse DNS lookup (a flood of connections would be a flood of
# lookups): it shows the address where SoftEther shows "localhost".
CONNECTION_NAMES = {"Connection Name": "CID-<n> counts every connection since the server started",
                    "Connection Source": "vpnd shows the peer's address, SoftEther its reverse DNS name"}


def test_connections(pair):
    """ConnectionList shows vpncmd's own admin connection on both; ConnectionGet
    and ConnectionDisconnect of a held admin connection, and of no connection."""
    held = {}
    for side in (pair.ours, pair.theirs):
        held[side.label] = admin_connection(side.port, PW)
    try:
        rows = pair.both("ConnectionList", allowed=CONNECTION_NAMES)
        assert {r["Type"] for r in rows} == {"Management RPC"}, rows
        assert all(re.fullmatch(r"127\.0\.0\.1: \d+", r["Connection Source"]) for r in rows), rows
        names = {}
        for side in (pair.ours, pair.theirs):   # the held connection: the one listed with its port
            port = held[side.label].getsockname()[1]
            listed = table(side.vpncmd("ConnectionList"))
            names[side.label] = next(r["Connection Name"] for r in listed
                                     if r["Connection Source"].endswith(f": {port}"))
        res = {label: pair_side.vpncmd("ConnectionGet", names[label])
               for label, pair_side in (("vpnd", pair.ours), ("SoftEther", pair.theirs))}
        same_output(pair.ours, pair.theirs, res["vpnd"], res["SoftEther"], "ConnectionGet",
                    allowed={**CONNECTION_NAMES, "Source Host Name": CONNECTION_NAMES["Connection Source"],
                             "Client Port Number (TCP)": "each held connection's own port",
                             "Server Product Name": "the product's name"})
        for side in (pair.ours, pair.theirs):
            assert side.vpncmd("ConnectionDisconnect", names[side.label]).returncode == 0
            assert closed_by_peer(held[side.label]), side.label
        pair.both("ConnectionGet", "CID-999999")         # error 29 on both
        pair.both("ConnectionDisconnect", "CID-999999")  # error 29 on both
    finally:
        for sock in held.values():
            sock.close()


def test_server_cipher(pair):
    """ServerCipherGet lists the same usable names (the same OpenSSL); a name
    is stored upper-cased, one OpenSSL does not know is stored too (SoftEther
    5.01 checks nothing: such a name gives connections the default suites)."""
    try:
        pair.both("ServerCipherGet")
        for name in ("ecdhe-rsa-aes256-gcm-sha384", "NO-SUCH-CIPHER"):
            pair.both("ServerCipherSet", name)
            out = {side.label: side.vpncmd("ServerCipherGet").stdout for side in (pair.ours, pair.theirs)}
            assert out["vpnd"] == out["SoftEther"] and f"\n {name.upper()}\n" in out["vpnd"], out
    finally:
        for side in (pair.ours, pair.theirs):
            side.vpncmd("ServerCipherSet", "~DEFAULT~")
