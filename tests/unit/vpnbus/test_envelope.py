"""vpnbus/envelope.py: exact bytes, round trips, and every malformed case."""

from __future__ import annotations

import dataclasses
import enum
from typing import Optional

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpnbus.envelope import (ENVELOPE_VERSION, BadMessage, Envelope, Reason, Registry, decode,
                             encode, message)

REG = Registry()


class Color(enum.IntEnum):
    RED = 1
    BLUE = 2


@message("t.ping", registry=REG)
class Ping:
    n: int


@message("t.empty", registry=REG)
class Empty:
    pass


@message("t.point", registry=REG)
class Point:
    x: float
    y: float


@message("t.all", registry=REG)
class AllTypes:
    i: int
    s: str
    b: bytes
    flag: bool
    f: float
    opt: Optional[str] = None
    union: int | str = 0
    items: list[int] = dataclasses.field(default_factory=list)
    table: dict[str, bytes] | None = None
    points: tuple[Point, ...] = ()
    color: Color = Color.RED


def enc(msg, ident=1, reply_to=None, **kw):
    return encode(Envelope(msg, ident, reply_to), registry=REG, **kw)


def dec(frame, **kw):
    return decode(frame, registry=REG, **kw)


def raw_frame(**over):
    """A msgpack envelope map with fields overridden (None values kept)."""
    env = {"v": ENVELOPE_VERSION, "type": "t.ping", "id": 1, "reply_to": None, "body": {"n": 1}}
    env.update(over)
    return msgpack.packb(env, use_bin_type=True)


def without(key):
    env = {"v": ENVELOPE_VERSION, "type": "t.ping", "id": 1, "reply_to": None, "body": {"n": 1}}
    del env[key]
    return msgpack.packb(env)


# (envelope, exact hex) — one table drives both encode and decode.
GOLDEN = [
    (Envelope(Ping(n=1), 1),
     "85a17601a474797065a6742e70696e67a2696401a87265706c795f746fc0a4626f647981a16e01"),
    (Envelope(Empty(), 2, reply_to=1),
     "85a17601a474797065a7742e656d707479a2696402a87265706c795f746f01a4626f647980"),
]


@pytest.mark.parametrize("envelope,hexbytes", GOLDEN)
def test_golden_bytes(envelope, hexbytes):
    assert encode(envelope, registry=REG).hex() == hexbytes
    assert decode(bytes.fromhex(hexbytes), registry=REG) == envelope


ROUND_TRIPS = [
    Ping(n=0),
    Ping(n=-(1 << 63)),
    Ping(n=(1 << 63) - 1),
    Empty(),
    Point(x=1.5, y=-0.25),
    AllTypes(i=7, s="héllo", b=b"\x00\xff", flag=True, f=2.5),
    AllTypes(i=0, s="", b=b"", flag=False, f=0.0, opt="x", union="word",
             items=[1, 2, 3], table={"k": b"v"}, points=(Point(x=1.0, y=2.0),),
             color=Color.BLUE),
]


@pytest.mark.parametrize("msg", ROUND_TRIPS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("reply_to", [None, 0, 99])
def test_round_trip(msg, reply_to):
    env = Envelope(msg, 42, reply_to)
    assert dec(enc(msg, 42, reply_to)) == env


def test_int_on_wire_widens_to_float():
    got = dec(raw_frame(type="t.point", body={"x": 1, "y": 2}))
    assert got.message == Point(x=1.0, y=2.0) and type(got.message.x) is float


def test_defaults_fill_absent_fields():
    frame = raw_frame(type="t.all", body={"i": 1, "s": "a", "b": b"", "flag": False, "f": 0.5})
    assert dec(frame).message == AllTypes(i=1, s="a", b=b"", flag=False, f=0.5)


GOOD = raw_frame()
ALL_BODY = {"i": 1, "s": "a", "b": b"", "flag": False, "f": 0.5}

MALFORMED = [
    ("empty", b"", Reason.NOT_MSGPACK),
    ("reserved byte", b"\xc1", Reason.NOT_MSGPACK),
    ("truncated", GOOD[:-1], Reason.NOT_MSGPACK),
    ("trailing garbage", GOOD + b"\x00", Reason.NOT_MSGPACK),
    ("int map key", msgpack.packb({1: 2}), Reason.NOT_MSGPACK),
    ("bad utf-8", b"\xa2\xff\xfe", Reason.NOT_MSGPACK),
    ("ext type", msgpack.packb(msgpack.ExtType(5, b"xx")), Reason.NOT_MSGPACK),
    ("array claims 2**32-1 items", b"\xdd\xff\xff\xff\xff\x01", Reason.NOT_MSGPACK),
    ("too deep", b"\x91" * 100_000 + b"\x01", Reason.NOT_MSGPACK),
    ("top level list", msgpack.packb([1, 2]), Reason.BAD_ENVELOPE),
    ("top level int", msgpack.packb(5), Reason.BAD_ENVELOPE),
    ("wrong version", raw_frame(v=2), Reason.WRONG_VERSION),
    ("version as str", raw_frame(v="1"), Reason.WRONG_VERSION),
    ("no version", without("v"), Reason.BAD_ENVELOPE),
    ("no reply_to", without("reply_to"), Reason.BAD_ENVELOPE),
    ("no body", without("body"), Reason.BAD_ENVELOPE),
    ("extra envelope key", raw_frame(extra=1), Reason.BAD_ENVELOPE),
    ("id str", raw_frame(id="1"), Reason.BAD_ENVELOPE),
    ("id bool", raw_frame(id=True), Reason.BAD_ENVELOPE),
    ("id negative", raw_frame(id=-1), Reason.BAD_ENVELOPE),
    ("id too big", raw_frame(id=1 << 63), Reason.BAD_ENVELOPE),
    ("reply_to str", raw_frame(reply_to="x"), Reason.BAD_ENVELOPE),
    ("type not str", raw_frame(type=7), Reason.BAD_ENVELOPE),
    ("unknown type", raw_frame(type="t.nope"), Reason.UNKNOWN_TYPE),
    ("body not map", raw_frame(body=[1]), Reason.BAD_FIELD),
    ("missing field", raw_frame(body={}), Reason.BAD_FIELD),
    ("str for int", raw_frame(body={"n": "1"}), Reason.BAD_FIELD),
    ("bool for int", raw_frame(body={"n": True}), Reason.BAD_FIELD),
    ("float for int", raw_frame(body={"n": 1.0}), Reason.BAD_FIELD),
    ("nil for int", raw_frame(body={"n": None}), Reason.BAD_FIELD),
    ("undeclared field", raw_frame(body={"n": 1, "m": 2}), Reason.BAD_FIELD),
    ("bool for float", raw_frame(type="t.point", body={"x": True, "y": 1.0}), Reason.BAD_FIELD),
    ("str for bytes", raw_frame(type="t.all", body={**ALL_BODY, "b": "x"}), Reason.BAD_FIELD),
    ("list item", raw_frame(type="t.all", body={**ALL_BODY, "items": [1, "2"]}),
     Reason.BAD_FIELD),
    ("map for list", raw_frame(type="t.all", body={**ALL_BODY, "items": {}}), Reason.BAD_FIELD),
    ("bytes map key", raw_frame(type="t.all", body={**ALL_BODY, "table": {b"k": b"v"}}),
     Reason.BAD_FIELD),
    ("map value", raw_frame(type="t.all", body={**ALL_BODY, "table": {"k": 1}}),
     Reason.BAD_FIELD),
    ("union fits none", raw_frame(type="t.all", body={**ALL_BODY, "union": 1.5}),
     Reason.BAD_FIELD),
    ("nested record field", raw_frame(type="t.all", body={**ALL_BODY, "points": [{"x": 1}]}),
     Reason.BAD_FIELD),
    ("enum value", raw_frame(type="t.all", body={**ALL_BODY, "color": 9}), Reason.BAD_FIELD),
    ("enum type", raw_frame(type="t.all", body={**ALL_BODY, "color": 1.0}), Reason.BAD_FIELD),
]


@pytest.mark.parametrize("name,frame,reason", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed(name, frame, reason):
    with pytest.raises(BadMessage) as info:
        dec(frame)
    assert info.value.reason is reason


def test_oversized_frame_refused_before_parsing():
    frame = enc(AllTypes(i=1, s="x" * 2000, b=b"", flag=False, f=0.0))
    assert dec(frame, max_frame_bytes=len(frame)).message.s == "x" * 2000
    with pytest.raises(BadMessage) as info:
        dec(frame, max_frame_bytes=len(frame) - 1)
    assert info.value.reason is Reason.OVERSIZED


def test_encode_refuses_local_mistakes():
    with pytest.raises(ValueError):
        enc(AllTypes(i=1, s="x" * 2000, b=b"", flag=False, f=0.0), max_frame_bytes=100)
    with pytest.raises(ValueError):
        enc(Ping(n=1), ident=-1)
    with pytest.raises(KeyError):
        encode(Envelope(object(), 1), registry=REG)


def test_records_are_frozen_slotted_kw_only():
    p = Ping(n=1)
    with pytest.raises(AttributeError):
        p.n = 2  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    with pytest.raises(TypeError):
        Ping(1)  # type: ignore[misc]


def test_registry_refuses_duplicates_and_unsupported_types():
    reg = Registry()

    @message("d.one", registry=reg)
    class One:
        a: int

    with pytest.raises(ValueError):
        @message("d.one", registry=reg)
        class Two:
            a: int

    @message("d.any", registry=reg)
    class Weird:
        a: set[int]

    with pytest.raises(TypeError):
        encode(Envelope(Weird(a={1}), 1), registry=reg)
    assert reg.class_of("d.one") is One and reg.tag_of(One) == "d.one"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_bad_message(data):
    try:
        dec(data)
    except BadMessage as exc:
        assert isinstance(exc.reason, Reason)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
       s=st.text(max_size=50), b=st.binary(max_size=50),
       items=st.lists(st.integers(min_value=0, max_value=1 << 32), max_size=5))
def test_round_trip_property(n, s, b, items):
    msg = AllTypes(i=n, s=s, b=b, flag=bool(n & 1), f=float(n % 1000) / 8, items=items)
    assert dec(enc(msg, 7)).message == msg
