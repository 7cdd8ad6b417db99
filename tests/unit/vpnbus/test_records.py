"""vpnbus/records.py: the one checked-record codec (bus and config file)."""

from __future__ import annotations

import dataclasses
import enum
import json

import msgpack
import pytest

from vpnbus.records import NATIVE, BytesForm, Codec, RecordError, convert

HEX = Codec(bytes_form=BytesForm.HEX)
LENIENT = Codec(bytes_form=BytesForm.HEX, unknown_fields="ignore")


class Kind(enum.IntEnum):
    A = 1
    B = 2


@dataclasses.dataclass
class Leaf:
    key: bytes
    n: int = 0


@dataclasses.dataclass
class Tree:
    name: str
    leaves: list[Leaf] = dataclasses.field(default_factory=list)
    by_name: dict[str, Leaf] = dataclasses.field(default_factory=dict)
    blob: bytes | None = None
    kind: Kind = Kind.A
    ratio: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeafCopy:
    key: bytes
    n: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class TreeCopy:
    name: str
    leaves: list[LeafCopy]
    by_name: dict[str, LeafCopy]
    blob: bytes | None
    kind: Kind
    ratio: float
    extra: str = "default"


TREE = Tree("t", leaves=[Leaf(b"\x00\xff", 3)], by_name={"x": Leaf(b"")}, blob=b"\x01", kind=Kind.B,
            ratio=0.5)

# (codec, plain form of TREE): one table drives encode and decode.
PLAIN = [
    (NATIVE, {"name": "t", "leaves": [{"key": b"\x00\xff", "n": 3}], "by_name": {"x": {"key": b"", "n": 0}},
              "blob": b"\x01", "kind": 2, "ratio": 0.5}),
    (HEX, {"name": "t", "leaves": [{"key": "00ff", "n": 3}], "by_name": {"x": {"key": "", "n": 0}},
           "blob": "01", "kind": 2, "ratio": 0.5}),
]


@pytest.mark.parametrize("codec,plain", PLAIN, ids=["native", "hex"])
def test_encode_decode_table(codec, plain):
    assert codec.encode(TREE) == plain
    assert codec.decode(Tree, plain) == TREE


def test_plain_forms_survive_their_carriers():
    assert NATIVE.decode(Tree, msgpack.unpackb(msgpack.packb(NATIVE.encode(TREE)), raw=False)) == TREE
    assert HEX.decode(Tree, json.loads(json.dumps(HEX.encode(TREE)))) == TREE


def test_int_and_str_enum_members_in_plain_fields_encode_as_plain_values():
    plain = NATIVE.encode(Leaf(b"", Kind.B))
    assert plain == {"key": b"", "n": 2} and type(plain["n"]) is int
    assert NATIVE.decode(Leaf, plain) == Leaf(b"", 2)


@pytest.mark.parametrize("codec,plain,path,problem", [
    (NATIVE, {"name": 1}, "Tree.name", "expected str, got int"),
    (NATIVE, {}, "Tree.name", "missing"),
    (NATIVE, {"name": "t", "leaves": [{"key": b"", "n": True}]}, "Tree.leaves[0].n", "expected int, got bool"),
    (NATIVE, {"name": "t", "by_name": {"x": {"n": 1}}}, "Tree.by_name['x'].key", "missing"),
    (NATIVE, {"name": "t", "blob": "01"}, "Tree.blob", "str fits no alternative"),
    (NATIVE, {"name": "t", "kind": 3}, "Tree.kind", "3 is not a Kind"),
    (NATIVE, {"name": "t", "other": 1}, "Tree", "undeclared field(s) ['other']"),
    (HEX, {"name": "t", "leaves": [{"key": b"\x00"}]}, "Tree.leaves[0].key", "expected hex text, got bytes"),
    (HEX, {"name": "t", "leaves": [{"key": "0g"}]}, "Tree.leaves[0].key", "not hex"),
    (HEX, [], "Tree", "expected dict, got list"),
])
def test_one_error_type_naming_the_path(codec, plain, path, problem):
    with pytest.raises(RecordError) as exc:
        codec.decode(Tree, plain)
    assert (exc.value.path, exc.value.problem) == (path, problem)
    assert str(exc.value) == f"{path}: {problem}"


def test_the_path_is_rooted_where_the_caller_says():
    with pytest.raises(RecordError, match=r"^config\.name: missing$"):
        HEX.decode(Tree, {}, "config")


def test_unknown_fields_refused_or_ignored_by_parameter():
    plain = {"name": "t", "gone": 1, "leaves": [{"key": "", "old": 2}]}
    with pytest.raises(RecordError, match="undeclared"):
        HEX.decode(Tree, plain)
    assert LENIENT.decode(Tree, plain) == Tree("t", leaves=[Leaf(b"")])


def test_float_fields_take_ints_and_widen():
    got = NATIVE.decode(Tree, {"name": "t", "ratio": 2})
    assert got.ratio == 2.0 and type(got.ratio) is float


def test_convert_copies_by_field_name_through_nested_records():
    copy = convert(TREE, TreeCopy)
    assert copy == TreeCopy(name="t", leaves=[LeafCopy(key=b"\x00\xff", n=3)],
                            by_name={"x": LeafCopy(key=b"", n=0)}, blob=b"\x01", kind=Kind.B, ratio=0.5,
                            extra="default")
    with pytest.raises(RecordError, match=r"^TreeCopy: undeclared field\(s\) \['extra'\]$"):
        convert(copy, Tree)       # a field the target lacks is refused, never dropped
    assert convert(dataclasses.replace(copy, extra="default"), TreeCopy) == copy


def test_unsupported_field_types_are_our_bug():
    @dataclasses.dataclass
    class Weird:
        a: set[int]

    with pytest.raises(TypeError):
        NATIVE.encode(Weird({1}))
    with pytest.raises(TypeError):
        NATIVE.decode(Weird, {"a": [1]})
    with pytest.raises(TypeError):
        NATIVE.encode(object())


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node] = dataclasses.field(default_factory=list)


def test_a_record_may_contain_itself():
    tree = Node(1, [Node(2, [Node(3)])])
    assert NATIVE.decode(Node, NATIVE.encode(tree)) == tree


def test_a_nested_record_is_encoded_by_its_own_class():
    @dataclasses.dataclass
    class BigLeaf(Leaf):
        extra: int = 0

    plain = NATIVE.encode(Tree("t", leaves=[BigLeaf(b"", 1, 2)]))
    assert plain["leaves"] == [{"key": b"", "n": 1, "extra": 2}]
    with pytest.raises(RecordError, match=r"^Tree\.leaves\[0\]: undeclared field\(s\) \['extra'\]$"):
        NATIVE.decode(Tree, plain)    # extra data is refused, never cut off silently
