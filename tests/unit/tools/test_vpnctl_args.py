"""vpncmd argument syntax: splitting, binding to a verb's spec, conversions."""

from __future__ import annotations

import pytest

from tools.vpnctl.args import (
    Param,
    Positional,
    UsageError,
    bind,
    split_host_port,
    split_words,
    to_ipv4,
    to_port_list,
    to_uint,
    to_yes_no,
)
from tools.vpnctl.verbs import VERBS, lookup, usage_line

MEMBER_PARAMS = (
    Param(name="IP"),
    Param(name="PORTS", required=True),
    Param(name="PASSWORD", required=True),
    Param(name="WEIGHT"),
)


@pytest.mark.parametrize(
    ("words", "positional", "params"),
    [
        ([], (), {}),
        (["hub1"], ("hub1",), {}),
        (["/PASSWORD:secret"], (), {"PASSWORD": "secret"}),
        (["/password:Secret"], (), {"PASSWORD": "Secret"}),  # names fold case, values keep it
        (["/server:host:443"], (), {"SERVER": "host:443"}),  # split at the first ':'
        (["/IP:::1"], (), {"IP": "::1"}),
        (["/NOTE:a b: c"], (), {"NOTE": "a b: c"}),
        (["/ONLY"], (), {"ONLY": ""}),  # name alone = empty value
        (["/NOTE:"], (), {"NOTE": ""}),
        (["u1", "/GROUP:g", "/REALNAME:R"], ("u1",), {"GROUP": "g", "REALNAME": "R"}),
        (["/GROUP:g", "u1"], ("u1",), {"GROUP": "g"}),  # order does not matter
    ],
)
def test_split_words(words, positional, params):
    parsed = split_words(words)
    assert parsed.positional == positional
    assert parsed.params == params


@pytest.mark.parametrize("words", [["/"], ["/:x"], ["/A:1", "/a:2"]])
def test_split_words_rejects(words):
    with pytest.raises(UsageError):
        split_words(words)


def test_bind_member_example():
    b = bind(
        "ClusterSettingMember",
        ["10.0.0.1:443", "/ip:10.0.0.2", "/PORTS:443,5555", "/PASSWORD:pw"],
        Positional(name="server:port"),
        MEMBER_PARAMS,
    )
    assert b.arg == "10.0.0.1:443"
    assert b.get("ports") == "443,5555"
    assert b.get("WEIGHT") is None


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["/PORTS:443", "/PASSWORD:pw"], "missing argument <server:port>"),
        (["h:1", "/PASSWORD:pw"], "missing required parameter /PORTS"),
        (["h:1", "/PORTS:1", "/PASSWORD:pw", "/COLOR:red"], "unknown parameter .COLOR"),
        (["h:1", "h:2", "/PORTS:1", "/PASSWORD:pw"], "unexpected extra argument"),
    ],
)
def test_bind_errors_name_the_problem(words, message):
    with pytest.raises(UsageError, match=message):
        bind("ClusterSettingMember", words, Positional(name="server:port"), MEMBER_PARAMS)


def test_bind_positional_not_accepted():
    with pytest.raises(UsageError, match="takes no positional"):
        bind("HubList", ["x"], None, ())


def test_bind_optional_positional():
    assert bind("HubSetOnline", [], Positional(name="name", required=False), ()).arg is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("yes", True),
        ("YES", True),
        ("y", True),
        ("true", True),
        ("2", True),
        ("no", False),
        ("false", False),
        ("0", False),
    ],
)
def test_yes_no(value, expected):
    assert to_yes_no("ONLY", value) is expected


def test_yes_no_rejects_garbage():
    with pytest.raises(UsageError, match="/ONLY must be yes or no"):
        to_yes_no("ONLY", "maybe")


def test_uint():
    assert to_uint("WEIGHT", None, 100) == 100
    assert to_uint("WEIGHT", " 250 ") == 250
    for bad in ("-1", "abc", "1.5", str(2**32)):
        with pytest.raises(UsageError):
            to_uint("WEIGHT", bad)


def test_port_list():
    assert to_port_list("PORTS", "443,5555") == [443, 5555]
    assert to_port_list("PORTS", "443 992, 1194") == [443, 992, 1194]
    for bad in (None, "", "0", "65536", "443,443", "x", ",".join(str(p) for p in range(1, 130))):
        with pytest.raises(UsageError):
            to_port_list("PORTS", bad)


def test_ipv4():
    assert to_ipv4("IP", None) == "0.0.0.0"
    assert to_ipv4("IP", "10.0.0.2") == "10.0.0.2"
    for bad in ("10.0.0", "::1", "host"):
        with pytest.raises(UsageError):
            to_ipv4("IP", bad)


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("h:443", None, ("h", 443)),
        ("127.0.0.1:5555", None, ("127.0.0.1", 5555)),
        ("[::1]:443", None, ("::1", 443)),
        ("host", 443, ("host", 443)),
        ("[::1]", 992, ("::1", 992)),
    ],
)
def test_split_host_port(text, default, expected):
    assert split_host_port(text, default) == expected


@pytest.mark.parametrize("text", ["host", ":443", "h:0", "h:70000", "h:x", "[::1", "[::1]x"])
def test_split_host_port_rejects(text):
    with pytest.raises(UsageError):
        split_host_port(text)


def test_verbs_are_case_insensitive_and_unique():
    assert lookup("hublist").name == "HubList"
    assert lookup("CLUSTERMEMBERLIST").methods == ("EnumFarmMember",)
    assert len({v.name.lower() for v in VERBS}) == len(VERBS)
    with pytest.raises(UsageError, match="unknown command 'NoSuchVerb'"):
        lookup("NoSuchVerb")


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        ("hubl", "HubList"),  # unique prefix
        ("HCS", "HubCreateStatic"),  # omission name: capitals of the name
        ("csm", "ClusterSettingMember"),
        ("hcstatic", "HubCreateStatic"),  # omission name + tail of the name
        ("hubcreate", "HubCreate"),  # exact match wins over longer names
    ],
)
def test_verb_abbreviations(text, verb):
    assert lookup(text).name == verb


def test_ambiguous_verb():
    with pytest.raises(UsageError, match="ambiguous: HubCreate, HubCreateStatic, HubCreateDynamic"):
        lookup("hc")


def test_parameter_abbreviation_and_ambiguity():
    spec = (Param(name="PASSWORD"), Param(name="PORTS"), Param(name="IP"))
    assert bind("X", ["/pa:pw", "/po:443"], None, spec).params == {"PASSWORD": "pw", "PORTS": "443"}
    with pytest.raises(UsageError, match="ambiguous"):
        bind("X", ["/p:1"], None, spec)
    with pytest.raises(UsageError, match="more than once"):
        bind("X", ["/pass:1", "/PASSWORD:2"], None, spec)


@pytest.mark.parametrize("value", ["none", "NONE", "null"])
def test_none_and_null_mean_empty(value):
    parsed = split_words(["u1", f"/GROUP:{value}", value])
    assert parsed.params == {"GROUP": ""}
    assert parsed.positional == ("u1", "")


def test_usage_line():
    assert usage_line(lookup("UserPasswordSet")) == "UserPasswordSet <name> /PASSWORD:value"
    assert usage_line(lookup("HubSetOnline")) == "HubSetOnline [<name>]"
