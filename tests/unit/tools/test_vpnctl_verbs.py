"""Each verb's JSON-RPC calls (method and exact params), with a recording fake
server: these are the requests our vpnd must accept as SoftEther does."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tools.vpnctl.args import UsageError, bind
from tools.vpnctl.spec import Ctx, VerbError
from tools.vpnctl.verbs import VERBS, lookup


class FakeServer:
    """Records calls; answers from a {method: result} table (default {})."""

    def __init__(self, answers: dict[str, dict[str, Any]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((method, params or {}))
        return self.answers.get(method, {})


def run_verb(words: list[str], hub: str | None = None, answers=None) -> FakeServer:
    verb = lookup(words[0])
    fake = FakeServer(answers)
    verb.run(Ctx(client=fake, args=bind(verb.name, words[1:], verb.positional, verb.params), hub=hub))
    assert [m for m, _ in fake.calls] == list(verb.methods)
    return fake


@pytest.mark.parametrize(
    ("words", "hub", "method", "params"),
    [
        (["ServerInfoGet"], None, "GetServerInfo", {}),
        (["ServerPasswordSet", "pw:1"], None, "SetServerPassword", {"PlainTextPassword_str": "pw:1"}),
        (
            ["HubCreateStatic", "h1", "/PASSWORD:x"],
            None,
            "CreateHub",
            {"HubName_str": "h1", "AdminPasswordPlainText_str": "x", "Online_bool": True, "HubType_u32": 1},
        ),
        (
            ["HubCreateDynamic", "h1"],
            None,
            "CreateHub",
            {"HubName_str": "h1", "AdminPasswordPlainText_str": "", "Online_bool": True, "HubType_u32": 2},
        ),
        (["HubDelete", "h1"], None, "DeleteHub", {"HubName_str": "h1"}),
        (["HubSetOffline"], "h2", "SetHubOnline", {"HubName_str": "h2", "Online_bool": False}),
        (["HubSetOnline", "h3"], "h2", "SetHubOnline", {"HubName_str": "h3", "Online_bool": True}),
        (["UserList"], "h", "EnumUser", {"HubName_str": "h"}),
        (["UserGet", "u"], "h", "GetUser", {"HubName_str": "h", "Name_str": "u"}),
        (["UserDelete", "u"], "h", "DeleteUser", {"HubName_str": "h", "Name_str": "u"}),
        (
            ["ClusterSettingController", "/WEIGHT:0", "/ONLY:yes"],
            None,
            "SetFarmSetting",
            {"ServerType_u32": 1, "Weight_u32": 100, "ControllerOnly_bool": True},
        ),
        (["ClusterSettingStandalone"], None, "SetFarmSetting", {"ServerType_u32": 0}),
        (
            ["ClusterSettingMember", "ctl.example:5555", "/PORTS:443, 992", "/PASSWORD:p", "/WEIGHT:50"],
            None,
            "SetFarmSetting",
            {
                "ServerType_u32": 2,
                "ControllerName_str": "ctl.example",
                "ControllerPort_u32": 5555,
                "MemberPasswordPlaintext_str": "p",
                "PublicIp_ip": "0.0.0.0",
                "Ports_u32": [443, 992],
                "Weight_u32": 50,
            },
        ),
        (["ClusterMemberInfoGet", "42"], None, "GetFarmInfo", {"Id_u32": 42}),
        (["ClusterMemberDrain", "42", "/RATE:20"], None, "ClusterMemberDrain", {"Id_u32": 42, "Rate_u32": 20}),
        (["ClusterMemberDrain", "42"], None, "ClusterMemberDrain", {"Id_u32": 42, "Rate_u32": 0}),
        (["ClusterMemberUndrain", "42"], None, "ClusterMemberUndrain", {"Id_u32": 42}),
        (["SessionGet", "SID-1"], "h", "GetSessionStatus", {"HubName_str": "h", "Name_str": "SID-1"}),
        (["SessionDisconnect", "SID-1"], "h", "DeleteSession", {"HubName_str": "h", "Name_str": "SID-1"}),
        (["MacTable"], "h", "EnumMacTable", {"HubName_str": "h"}),
        (["IpTable"], "h", "EnumIpTable", {"HubName_str": "h"}),
        (
            ["BridgeCreate", "h", "/DEVICE:veth0", "/TAP:yes"],
            None,
            "AddLocalBridge",
            {"HubNameLB_str": "h", "DeviceName_str": "veth0", "TapMode_bool": True},
        ),
        (["BridgeDelete", "h", "/DEVICE:veth0"], None, "DeleteLocalBridge", {"HubNameLB_str": "h", "DeviceName_str": "veth0"}),
        (["BridgeList"], None, "EnumLocalBridge", {}),
        (["CascadeList"], "h", "EnumLink", {"HubName_str": "h"}),
        (["SecureNatEnable"], "h", "EnableSecureNAT", {"HubName_str": "h"}),
        (["SecureNatDisable"], "h", "DisableSecureNAT", {"HubName_str": "h"}),
        (["SecureNatStatusGet"], "h", "GetSecureNATStatus", {"HubName_str": "h"}),
    ],
)
def test_single_call_verbs(words, hub, method, params):
    assert run_verb(words, hub).calls == [(method, params)]


@pytest.mark.parametrize(("server_type", "hub_type"), [(0, 0), (1, 2)])
def test_hub_create_type_follows_server_mode(server_type, hub_type):
    fake = run_verb(["HubCreate", "h"], answers={"GetServerInfo": {"ServerType_u32": server_type}})
    assert fake.calls[1][1]["HubType_u32"] == hub_type


@pytest.mark.parametrize(("verb", "hub_type"), [("HubSetStatic", 1), ("HubSetDynamic", 2)])
def test_hub_set_type_writes_back_the_hub_with_the_new_type(verb, hub_type):
    """As vpncmd's PsHubSetStatic: GetHub, then SetHub with every field read
    and only HubType changed (the positional name, not --hub, names the hub)."""
    hub = {"HubName_str": "H1", "Online_bool": False, "MaxSession_u32": 7, "NoEnum_bool": True,
           "HubType_u32": 3 - hub_type, "HashedPassword_bin": "AAAA"}
    fake = run_verb([verb, "h1"], hub="other", answers={"GetHub": hub})
    assert fake.calls[0] == ("GetHub", {"HubName_str": "h1"})
    assert fake.calls[1] == ("SetHub", {**hub, "HubName_str": "h1", "HubType_u32": hub_type})


def test_cascade_list_shows_each_link_status():
    links = {"LinkList": [
        {"AccountName_utf": "a", "Online_bool": False, "Connected_bool": False, "LastError_u32": 0},
        {"AccountName_utf": "b", "Online_bool": True, "Connected_bool": True, "LastError_u32": 0},
        {"AccountName_utf": "c", "Online_bool": True, "Connected_bool": False, "LastError_u32": 1},
        {"AccountName_utf": "d", "Online_bool": True, "Connected_bool": False, "LastError_u32": 0},
    ]}
    render = lookup("CascadeList").render
    assert render is not None
    text = render(links)
    rows = [[c.strip() for c in line.split("|")][:2] for line in text.strip().splitlines()[2:]]
    assert rows == [["a", "Offline"], ["b", "Online (Established)"], ["c", "Error: 1"], ["d", "Connecting"]]


def test_user_create_makes_an_unusable_password_user():
    fake = run_verb(["UserCreate", "u", "/GROUP:none", "/REALNAME:R", "/NOTE:n"], hub="h")
    (method, p), = fake.calls
    assert method == "CreateUser"
    assert (p["HubName_str"], p["Name_str"], p["GroupName_str"], p["Realname_utf"], p["Note_utf"]) == ("h", "u", "", "R", "n")
    assert p["AuthType_u32"] == 1
    assert len(base64.b64decode(p["HashedKey_bin"])) == 20
    assert len(base64.b64decode(p["NtLmSecureHash_bin"])) == 16


def test_user_password_set_keeps_fields_and_drops_old_hashes():
    user = {
        "HubName_str": "h",
        "Name_str": "u",
        "Realname_utf": "Real",
        "Note_utf": "n",
        "GroupName_str": "g",
        "ExpireTime_dt": "2030-01-01T00:00:00.000Z",
        "AuthType_u32": 2,
        "UserX_bin": "AAAA",
        "HashedKey_bin": "AAAA",
        "NtLmSecureHash_bin": "AAAA",
        "policy:Access_bool": True,
    }
    fake = run_verb(["UserPasswordSet", "u", "/PASSWORD:new"], hub="h", answers={"GetUser": user})
    assert fake.calls[0] == ("GetUser", {"HubName_str": "h", "Name_str": "u"})
    sent = fake.calls[1][1]
    assert sent["Auth_Password_str"] == "new" and sent["AuthType_u32"] == 1
    for gone in ("HashedKey_bin", "NtLmSecureHash_bin", "UserX_bin"):
        assert gone not in sent
    for kept in ("Realname_utf", "Note_utf", "GroupName_str", "ExpireTime_dt", "policy:Access_bool"):
        assert sent[kept] == user[kept]


def test_mac_table_filters_by_session():
    verb = lookup("MacTable")
    table = {"MacTable": [{"SessionName_str": "A"}, {"SessionName_str": "B"}]}
    res = verb.run(Ctx(client=FakeServer({"EnumMacTable": table}), args=bind("MacTable", ["B"], verb.positional, verb.params), hub="h"))
    assert res["MacTable"] == [{"SessionName_str": "B"}]


def test_member_cert_get_writes_pem(tmp_path):
    der = b"0\x82\x00\x01fake-der"
    target = tmp_path / "c.pem"
    fake = FakeServer({"GetFarmInfo": {"ServerCert_bin": base64.b64encode(der).decode()}})
    verb = lookup("ClusterMemberCertGet")
    verb.run(Ctx(client=fake, args=bind(verb.name, ["7", f"/SAVECERT:{target}"], verb.positional, verb.params), hub=None))
    text = target.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    assert fake.calls == [("GetFarmInfo", {"Id_u32": 7})]


MEMBER_ROW = {"Id_u32": 2, "Controller_bool": False, "ConnectedTime_dt": "2026-01-02T03:04:05.000Z",
              "Hostname_str": "m1", "Ip_ip": "192.0.2.7", "Point_u32": 100000, "NumSessions_u32": 0,
              "NumTcpConnections_u32": 0, "NumHubs_u32": 1, "AssignedClientLicense_u32": 0,
              "AssignedBridgeLicense_u32": 0}


def test_member_list_shows_the_endpoint_error_only_when_there_is_one():
    verb = lookup("ClusterMemberList")
    assert verb.render is not None
    vpncmd = verb.render({"FarmMemberList": [MEMBER_ROW]})  # SoftEther: no such field
    assert "Endpoint" not in vpncmd
    assert verb.render({"FarmMemberList": [{**MEMBER_ROW, "EndpointError_str": ""}]}) == vpncmd
    shown = verb.render({"FarmMemberList": [{**MEMBER_ROW, "Controller_bool": True, "EndpointError_str": ""},
                                            {**MEMBER_ROW, "EndpointError_str": "endpoint failed: 192.0.2.7:5555: "
                                             "connection refused"}]})
    assert "Public Endpoint Error" in shown and "endpoint failed: 192.0.2.7:5555: connection refused" in shown
    headers = lambda table: [h.strip() for h in table.splitlines()[0].split("|")]  # noqa: E731
    assert headers(shown) == headers(vpncmd) + ["Public Endpoint Error"]  # vpncmd's columns, then ours


def test_member_list_and_info_show_the_drain_only_when_a_member_is_drained():
    listing, info = lookup("ClusterMemberList"), lookup("ClusterMemberInfoGet")
    assert listing.render is not None and info.render is not None
    vpncmd = listing.render({"FarmMemberList": [MEMBER_ROW]})
    assert listing.render({"FarmMemberList": [{**MEMBER_ROW, "DrainState_str": ""}]}) == vpncmd
    shown = listing.render({"FarmMemberList": [{**MEMBER_ROW, "DrainState_str": ""},
                                               {**MEMBER_ROW, "DrainState_str": "draining"}]})
    headers = lambda table: [h.strip() for h in table.splitlines()[0].split("|")]  # noqa: E731
    assert headers(shown) == headers(vpncmd) + ["Drain"] and "draining" in shown
    row = {**MEMBER_ROW, "Ports_u32": [5555], "Weight_u32": 100, "HubsList": []}
    assert "Drain" not in info.render({**row, "DrainState_str": ""})
    shown = info.render({**row, "DrainState_str": "drained", "DrainRate_u32": 5, "DrainMoved_u32": 3})
    assert "drained" in shown and "Sessions Moved by the Drain" in shown


def test_member_info_shows_the_endpoint_error_only_when_there_is_one():
    verb = lookup("ClusterMemberInfoGet")
    assert verb.render is not None
    info = {**MEMBER_ROW, "Ports_u32": [5555], "Weight_u32": 100, "HubsList": []}
    vpncmd = verb.render(info)
    assert "Endpoint" not in vpncmd and verb.render({**info, "EndpointError_str": ""}) == vpncmd
    shown = verb.render({**info, "EndpointError_str": "endpoint not verified"})
    assert "Public Endpoint Error" in shown and "endpoint not verified" in shown


def test_member_cert_get_unwritable_path_is_a_verb_error(tmp_path):
    fake = FakeServer({"GetFarmInfo": {"ServerCert_bin": base64.b64encode(b"x").decode()}})
    verb = lookup("ClusterMemberCertGet")
    args = bind(verb.name, ["7", f"/SAVECERT:{tmp_path}/no/such/dir/c.pem"], verb.positional, verb.params)
    with pytest.raises(VerbError, match="cannot write"):
        verb.run(Ctx(client=fake, args=args, hub=None))


@pytest.mark.parametrize(
    "words",
    [
        ["ClusterSettingMember", "ctl", "/PORTS:443", "/PASSWORD:p"],  # no port
        ["ClusterSettingMember", "ctl:443", "/PORTS:0", "/PASSWORD:p"],
        ["ClusterSettingMember", "ctl:443", "/PORTS:443", "/PASSWORD:p", "/IP:not-an-ip"],
        ["ClusterSettingController", "/WEIGHT:-5"],
        ["ClusterSettingController", "/ONLY:perhaps"],
        ["ClusterMemberInfoGet", "abc"],
    ],
)
def test_bad_values_fail_before_any_call(words):
    verb = lookup(words[0])
    fake = FakeServer()
    with pytest.raises(UsageError):
        verb.run(Ctx(client=fake, args=bind(verb.name, words[1:], verb.positional, verb.params), hub=None))
    assert fake.calls == []


def test_hub_scoped_verbs_need_a_hub():
    for verb in VERBS:
        if not verb.hub_scoped:
            continue
        words = ["x"] if verb.positional is not None and verb.positional.required else []
        words += [f"/{p.name}:v" for p in verb.params if p.required]
        fake = FakeServer()
        with pytest.raises(UsageError, match="--hub"):
            verb.run(Ctx(client=fake, args=bind(verb.name, words, verb.positional, verb.params), hub=None))
        assert fake.calls == []


def test_session_list_asks_the_server_type_first_as_vpncmd():
    fake = run_verb(["SessionList"], "h", {"GetServerInfo": {"ServerType_u32": 1}})
    assert fake.calls == [("GetServerInfo", {}), ("EnumSession", {"HubName_str": "h"})]


def test_session_list_location_column_and_missing_note_as_vpncmd():
    from tools.vpnctl.verbs_session import render_session_list

    rows = [
        {"Name_str": "SID-A-1", "RemoteSession_bool": False, "RemoteHostname_str": "ctl"},
        {"Name_str": "SID-B-1", "RemoteSession_bool": True, "RemoteHostname_str": "m2"},
        {"Name_str": "SID-LOCALBRIDGE-2", "BridgeMode_bool": True, "RemoteHostname_str": "ctl"},
    ]
    missing = [{"Id": 3, "Hostname": "m3", "Reason": "no answer within 0.3 s"}]
    text = render_session_list({"SessionList": rows, "_ServerType": 1, "MissingServers": missing})
    lines = text.splitlines()
    assert "On 'ctl'" in lines[2] and "On 'm2'" in lines[3] and "Ethernet Bridge" in lines[4]
    assert lines[-1].startswith("Warning: cluster member m3 (ID 3) did not answer (no answer within 0.3 s)")
    standalone = render_session_list({"SessionList": rows[:1], "_ServerType": 0})
    assert "Local Session" in standalone and "Warning" not in standalone


def test_table_location_as_vpncmd():
    from tools.vpnctl.verbs_session import render_ip_table, render_mac_table

    macs = [{"Key_u32": 1, "RemoteHostname_str": "m2"}, {"Key_u32": 2}]
    text = render_mac_table({"MacTable": macs})
    assert "On 'm2'" in text and "On This Server" in text
    ips = render_ip_table({"IpTable": [{"Key_u32": 1, "IpAddress_ip": "10.0.0.1", "RemoteHostname_str": "m2"}],
                           "MissingServers": [{"Id": 4, "Hostname": "m4", "Reason": "timeout"}]})
    assert "On 'm2'" in ips and ips.splitlines()[-1].startswith("Warning: cluster member m4 (ID 4)")
