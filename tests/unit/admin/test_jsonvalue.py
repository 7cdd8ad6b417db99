import pytest

from node.admin.jsonvalue import ZERO_TIME, InvalidParams, Params, b64, dt, parse_dt


def test_missing_values_read_as_zero():
    p = Params({})
    assert (p.str("A"), p.u32("A"), p.u64("A"), p.bool("A"), p.bin("A"), p.dt("A"), p.ip("A"),
            p.u32_list("A")) == ("", 0, 0, False, b"", 0.0, "0.0.0.0", [])


def test_suffix_selects_the_type():
    p = Params({"HubName_str": "h", "HubName_u32": 3, "Note_utf": "é", "Key_bin": b64(b"\x01\x02"),
                "Online_bool": True, "Big_u64": 2**40, "Ports_u32": [443, 5555], "Ip_ip": "10.0.0.1",
                "Unknown_xyz": object()})
    assert p.str("HubName") == "h" and p.u32("HubName") == 3
    assert p.utf("Note") == "é" and p.bin("Key") == b"\x01\x02"
    assert p.bool("Online") is True and p.u64("Big") == 2**40
    assert p.u32_list("Ports") == [443, 5555] and p.ip("Ip") == "10.0.0.1"


@pytest.mark.parametrize("raw,expected", [(1, True), (0, False), ("true", True), ("no", False), ("1", True)])
def test_bool_accepts_softether_forms(raw, expected):
    assert Params({"X_bool": raw}).bool("X") is expected


@pytest.mark.parametrize("key,raw,getter", [
    ("X_u32", -1, "u32"), ("X_u32", 2**32, "u32"), ("X_u32", "5", "u32"), ("X_u32", True, "u32"),
    ("X_u64", 1.5, "u64"), ("X_str", 5, "str"), ("X_bin", "***", "bin"), ("X_bin", 5, "bin"),
    ("X_bool", [1], "bool"), ("X_dt", "yesterday", "dt"), ("X_ip", "300.1.1.1", "ip"),
    ("X_u32", ["a"], "u32_list"),
])
def test_wrong_types_raise_invalid_params(key, raw, getter):
    with pytest.raises(InvalidParams) as exc:
        getattr(Params({key: raw}), getter)("X")
    assert key in str(exc.value)


def test_times_round_trip_with_milliseconds():
    assert dt(0) == ZERO_TIME and parse_dt(ZERO_TIME) == 0.0
    assert dt(1700000000.123) == "2023-11-14T22:13:20.123Z"
    assert parse_dt("2023-11-14T22:13:20.123Z") == pytest.approx(1700000000.123)
    assert Params({"T_dt": 1700000000123}).dt("T") == pytest.approx(1700000000.123)
