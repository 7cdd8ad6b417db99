"""Human formatting of JSON-RPC values and the tables vpnctl prints."""

from __future__ import annotations

import base64

import pytest

from tools.vpnctl import render as r
from tools.vpnctl.verbs import lookup


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("NumSessions_u32", 1234567, "1,234,567"),
        ("Recv.UnicastBytes_u64", 512, "512 bytes"),
        ("Recv.UnicastBytes_u64", 3 * 1024 * 1024, "3,145,728 bytes (3.0 MiB)"),
        ("Online_bool", True, "Yes"),
        ("Online_bool", False, "No"),
        ("LastLoginTime_dt", "1970-01-01T09:00:00.000Z", "(None)"),  # SoftEther's zero time
        ("LastLoginTime_dt", "", "(None)"),
        ("LastLoginTime_dt", 0, "(None)"),
        ("GroupName_str", "", "(None)"),
        ("Realname_utf", "Zoë", "Zoë"),
        ("Ip_ip", "10.0.0.2", "10.0.0.2"),
        ("Ports_u32", [443, 5555], "443, 5555"),
        ("HashedKey_bin", base64.b64encode(bytes(range(4))).decode(), "00010203"),
        ("ServerCert_bin", base64.b64encode(bytes(100)).decode(), "(100 bytes of binary data)"),
        ("HashedKey_bin", "not base64!", "not base64!"),
        ("Unknown", {"a": 1}, "{'a': 1}"),
    ],
)
def test_format_value(key, value, text):
    assert r.format_value(key, value) == text


def test_dates_are_local_and_readable():
    text = r.fmt_dt("2026-11-26T13:32:17.369Z")
    assert len(text) == 19 and text[4] == "-" and text[13] == ":"
    assert r.fmt_dt("garbage") == "garbage"


def test_mac():
    assert r.fmt_mac(base64.b64encode(bytes([0, 0xAC, 1, 2, 3, 0xFF])).decode()) == "00-AC-01-02-03-FF"


def test_strip_suffix():
    assert r.strip_suffix("NumSessions_u32") == "NumSessions"
    assert r.strip_suffix("policy:Access_bool") == "policy:Access"
    assert r.strip_suffix("Auth_Password") == "Auth_Password"


def test_item_value_table():
    text = r.item_value_table({"A_u32": 1, "B_bool": True, "L": [{"x": 1}]})
    lines = text.splitlines()
    assert lines[0].split("|")[0].strip() == "Item"
    assert [ln.split("|")[0].strip() for ln in lines[2:]] == ["A", "B_bool".removesuffix("_bool")]


def test_list_table_keeps_leading_zeros_and_order():
    text = r.list_table([{"Name_str": "007", "NumLogin_u32": 5}], [("Name", "Name_str"), ("Logins", "NumLogin_u32")])
    assert [c.strip() for c in text.splitlines()[2].split("|")] == ["007", "5"]


def test_hub_list_totals_traffic():
    hub = {
        "HubName_str": "h",
        "Online_bool": False,
        "HubType_u32": 2,
        "IsTrafficFilled_bool": True,
        "Ex.Recv.UnicastBytes_u64": 1000,
        "Ex.Send.BroadcastBytes_u64": 234,
        "Ex.Recv.UnicastCount_u64": 3,
    }
    row = lookup("HubList").render({"HubList": [hub]}).splitlines()[2]
    cells = [c.strip() for c in row.split("|")]
    assert cells[:3] == ["h", "Offline", "Dynamic"]
    assert cells[-2:] == ["1,234", "3"]


def test_cluster_setting_member_view():
    text = lookup("ClusterSettingGet").render(
        {
            "ServerType_u32": 2,
            "Weight_u32": 0,
            "PublicIp_ip": "0.0.0.0",
            "Ports_u32": [443, 992],
            "ControllerName_str": "ctl",
            "ControllerPort_u32": 5555,
        }
    )
    rows = {ln.split("|")[0].strip(): ln.split("|")[1].strip() for ln in text.splitlines()[2:]}
    assert rows == {
        "Current Setting": "Cluster Member Server",
        "Weight": "100",
        "Public IP Address": "Automatic",
        "Public Port List": "443, 992",
        "Controller": "ctl:5555",
    }


def test_connection_status_offline_shows_last_error():
    text = lookup("ClusterConnectionStatusGet").render({"Online_bool": False, "LastError_u32": 9})
    assert "Not Connected" in text and "ERR_AUTH_FAILED (9)" in text
