"""PACK ⇄ JSON-RPC names (node/admin/pack_json.py): the generic rule that lets
every JSON-RPC handler serve vpncmd's binary RPC too."""

from __future__ import annotations

import ipaddress

import pytest

from node.admin.jsonvalue import Params
from node.admin.pack_json import JsonPackError, pack_to_params, result_to_pack
from node.softether.pack import TIME64_OFFSET_MS, Pack, ValueType


def _pack(*elements: tuple[str, ValueType, tuple]) -> Pack:
    p = Pack()
    for name, vtype, values in elements:
        p.add(name, vtype, values)
    return p


# PACK element(s) → the JSON params a handler sees
TO_PARAMS = [
    ("INT: number and bool", _pack(("Online", ValueType.INT, (1,))), {"Online_u32": 1, "Online_bool": True}),
    ("INT array", _pack(("Ports", ValueType.INT, (443, 5555))),
     {"Ports_u32": [443, 5555], "Ports_bool": [True, True]}),
    ("INT64: count and time (epoch ms)", _pack(("T", ValueType.INT64, (1000,))),
     {"T_u64": 1000, "T_dt": 1000 + TIME64_OFFSET_MS}),
    ("INT64 zero time", _pack(("T", ValueType.INT64, (0,))), {"T_u64": 0, "T_dt": 0}),
    ("STR", _pack(("HubName", ValueType.STR, ("Lab",))), {"HubName_str": "Lab"}),
    ("UNISTR", _pack(("Note", ValueType.UNISTR, ("é",))), {"Note_utf": "é"}),
    ("DATA", _pack(("MemberPassword", ValueType.DATA, (b"\x01\x02",))), {"MemberPassword_bin": "AQI="}),
    ("function_name and pencore are not params",
     _pack(("function_name", ValueType.STR, ("Test",)), ("pencore", ValueType.DATA, (b"x",))), {}),
]


@pytest.mark.parametrize("case,pack,params", TO_PARAMS, ids=[c[0] for c in TO_PARAMS])
def test_pack_to_params(case, pack, params):
    assert pack_to_params(pack) == _lower(params)


def _lower(params: dict) -> dict:
    return {k.lower(): v for k, v in params.items()}


def test_names_match_case_insensitively_as_pack_names_do():
    params = pack_to_params(_pack(("hubname", ValueType.STR, ("Lab",))))
    assert Params(params).str("HubName") == "Lab" and "HUBNAME_str" in params


def test_ip_elements_become_one_ip_field():
    p = Pack()
    p.add_ip("PublicIp", "10.0.0.2")
    p.add_ips("Ips", ["192.168.1.10", "2001:db8::1"])
    assert pack_to_params(p) == _lower({"PublicIp_ip": "10.0.0.2", "Ips_ip": ["192.168.1.10", "2001:db8::1"]})


def test_handlers_read_binary_params_as_json_ones():
    """vpncmd's SetFarmSetting for ClusterSettingMember, read through Params."""
    p = Pack()
    p.add_int("ServerType", 2)
    p.add_str("ControllerName", "10.0.0.1")
    p.add_int("ControllerPort", 443)
    p.add_data("MemberPassword", b"\x07" * 20)
    p.add_ip("PublicIp", "10.0.0.2")
    p.add_ints("Ports", [443])
    p.add_bool("ControllerOnly", False)
    p.add_time64("ExpireTime", 1_700_000_000_000)
    params = Params(pack_to_params(p))
    assert (params.u32("ServerType"), params.str("ControllerName"), params.u32("ControllerPort")) == (2, "10.0.0.1", 443)
    assert params.bin("MemberPassword") == b"\x07" * 20
    assert (params.ip("PublicIp"), params.u32_list("Ports"), params.bool("ControllerOnly")) == ("10.0.0.2", [443], False)
    assert params.dt("ExpireTime") == 1_700_000_000.0


def test_result_to_pack_by_suffix():
    p = result_to_pack({
        "Weight_u32": 100, "Controller_bool": True, "CurrentTick_u64": 2**40,
        "ConnectedTime_dt": "2023-11-14T22:13:20.000Z", "ZeroTime_dt": "1970-01-01T09:00:00.000Z",
        "Hostname_str": "m1", "Realname_utf": "Ä", "ServerCert_bin": "AQI=", "Ip_ip": "10.0.0.3",
        "Ports_u32": [443, 992], "Unknown_xyz": 1, "NoSuffix": "x",
    })
    assert p.get_int("Weight") == 100 and p.get_bool("Controller") and p.get_int64("CurrentTick") == 2**40
    assert p.get_time64("ConnectedTime") == 1_700_000_000_000 and p.get_int64("ZeroTime") == 0
    assert p.values("Hostname", ValueType.STR) == ("m1",) and p.values("Realname", ValueType.UNISTR) == ("Ä",)
    assert p.get_data("ServerCert") == b"\x01\x02" and p.get_ip("Ip") == ipaddress.IPv4Address("10.0.0.3")
    assert p.get_ints("Ports") == (443, 992)
    assert "Unknown" not in p and "NoSuffix" not in p and "Unknown_xyz" not in p


def test_groups_flatten_into_indexed_elements():
    """EnumHub's HubList as vpncmd reads it (PackGetIndexCount on HubName);
    a field missing from a row is that type's zero there."""
    p = result_to_pack({"HubList": [
        {"HubName_str": "a", "Online_bool": True, "Ip_ip": "10.0.0.1"},
        {"HubName_str": "b", "Online_bool": False, "NumSessions_u32": 3},
    ]})
    assert p.get_strs("HubName") == ("a", "b")
    assert p.get_ints("Online") == (1, 0)
    assert p.get_ints("NumSessions") == (0, 3)
    assert [p.get_ip("Ip", i) for i in (0, 1)] == [ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address(0)]
    assert "HubList" not in p


def test_an_empty_group_adds_nothing():
    assert len(result_to_pack({"HubList": [], "Ports_u32": []})) == 0


def test_round_trip_of_a_binary_request_through_json():
    p = Pack()
    p.add_str("HubName", "Lab")
    p.add_unistr("Note", "x")
    p.add_data("HashedKey", b"\x09" * 20)
    p.add_ip("Ip", "10.1.2.3")
    back = result_to_pack({k: v for k, v in pack_to_params(p).items()})
    assert back.get_str("HubName") == "Lab" and back.get_unistr("Note") == "x"
    assert back.get_data("HashedKey") == b"\x09" * 20 and back.get_ip("Ip") == ipaddress.IPv4Address("10.1.2.3")


@pytest.mark.parametrize("result", [
    {"Weight_u32": "heavy"}, {"Name_str": 3}, {"Cert_bin": "not base64!"}, {"Ip_ip": "nowhere"},
    {"When_dt": "yesterday"}, {"X_u32": 1, "X_str": "clash"},
], ids=["u32 text", "str number", "bad base64", "bad ip", "bad time", "one name two types"])
def test_results_that_cannot_be_encoded(result):
    with pytest.raises(JsonPackError):
        result_to_pack(result)
