"""PACK, SoftEther's binary key/value message (Mayaqua/Pack.c), sans-IO.

Wire layout, all integers big-endian (softether-protocol.md §2.1):

    PACK    := u32 n_elements, ELEMENT * n_elements
    ELEMENT := u32 len(name)+1, name (no NUL), u32 type, u32 n_values, VALUE * n_values
    INT u32 | INT64 u64 | DATA u32 size + bytes | STR u32 len + bytes (no NUL)
    UNISTR u32 size + UTF-8 bytes + one NUL (size counts the NUL)

Invariants kept here, as SoftEther's ReadPack/AddElement keep them:
- names are unique case-insensitively (ASCII case, `StrCmpi`); a duplicate,
  an element with 0 values, a name-length prefix of 0, a cut-short value or
  an unknown type makes the whole PACK unreadable (`PackError`);
- a name longer than 63 bytes is cut to 63 on read, like `ReadBufStr`;
- lookups are strict on type: asking for an INT named `timeout` when the
  element is an INT64 gives "absent" (0 / None), as `GetElement(p, n, type)`;
- limits of SoftEther's 64-bit build: 262 144 elements, 262 144 values per
  element, 384 MiB per value, 512 MiB per PACK (HTTP adds its own 64 KiB
  limit, see httpmsg.py);
- element order on the wire is insertion order. SoftEther sorts by name but
  readers never depend on order.

Conventions of §2.2 are helpers: bool (INT 0/1), arrays (one element, N
values), IP addresses (four elements, IPv4 INT with octets reversed, the
SoftEther 5.01 layout), time64 (Unix ms - 32 400 000) and the `pencore`
padding (0..999 random bytes, `CreateDummyValue`).

STR values are 8-bit strings in SoftEther; we decode them as UTF-8 with
`surrogateescape` so any byte string survives a decode/encode round trip.
Strings are cut at the first NUL on read, as C strings are.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, TypeVar, Union, overload

from node.softether.errors import Err
from node.softether.protocol_error import ProtocolError

MAX_ELEMENT_NAME_LEN = 63
MAX_ELEMENT_NUM = 262144
MAX_VALUE_NUM = 262144
MAX_VALUE_SIZE = 384 * 1024 * 1024
MAX_PACK_SIZE = 512 * 1024 * 1024
PENCORE_MAX = 1000  # HTTP_PACK_RAND_SIZE_MAX: padding is 0..999 bytes
TIME64_OFFSET_MS = 32_400_000  # SystemToUINT64 subtracts a fixed 9 hours
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
# SoftEther 5.01 stores an IPv6 address in its IP struct with the marker
# 192.0.2.254 in the IPv4 part, and PackAddIp writes that marker into `X`.
_IPV6_MARKER = int.from_bytes(bytes((192, 0, 2, 254)), "little")

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
RandBytes = Callable[[int], bytes]
_T = TypeVar("_T")


class ValueType(enum.IntEnum):
    """Type codes of Pack.h (VALUE_*)."""

    INT = 0
    DATA = 1
    STR = 2
    UNISTR = 3
    INT64 = 4


class PackError(ProtocolError):
    """A PACK from the peer cannot be read; the whole PACK is rejected.

    Raised by `Pack.decode`. Answer `Err.PROTOCOL_ERROR` and drop the peer.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, Err.PROTOCOL_ERROR)


@dataclass(frozen=True, slots=True)
class Element:
    """One named element: a type and 1..N values of that type."""

    name: str
    type: ValueType
    values: tuple


def _key(name: str) -> str:
    # StrCmpi folds ASCII letters only; str.lower() would also fold Latin-1.
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _at(values: tuple[_T, ...], index: int) -> _T | None:
    """values[index], or None for an index out of range (negative included)."""
    return values[index] if 0 <= index < len(values) else None


def _check_value(vtype: ValueType, v: object) -> object:
    """Validate one value we are about to add; ValueError on a local mistake."""
    if vtype in (ValueType.INT, ValueType.INT64):
        if not isinstance(v, int):
            raise ValueError(f"{vtype.name} value must be int, not {type(v).__name__}")
        if not 0 <= v <= (_U32 if vtype is ValueType.INT else _U64):
            raise ValueError(f"{vtype.name} value {v} out of range")
        return int(v)
    if vtype is ValueType.DATA:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise ValueError("DATA value must be bytes")
        data = bytes(v)
        if len(data) > MAX_VALUE_SIZE:
            raise ValueError("DATA value too large")
        return data
    if not isinstance(v, str):
        raise ValueError(f"{vtype.name} value must be str")
    if "\0" in v:
        raise ValueError(f"{vtype.name} value cannot contain NUL")
    v.encode("utf-8", "surrogateescape")  # raises UnicodeEncodeError (a ValueError)
    return v


class Pack:
    """An ordered set of named elements; see the module docstring.

    Build with the `add_*` methods (ValueError on a duplicate name, a bad
    value or a name over 63 bytes), read with the `get_*` methods (absent or
    wrong-typed elements give 0 / False / None, never an exception).
    """

    __slots__ = ("_elements",)

    def __init__(self) -> None:
        self._elements: dict[str, Element] = {}

    # ---- raw access -------------------------------------------------------

    def add(self, name: str, vtype: ValueType, values: Iterable[object]) -> None:
        """Add an element with 1..N values; ValueError if the name is taken."""
        vtype = ValueType(vtype)
        raw = name.encode("latin-1")  # ValueError for non-Latin-1 names
        if len(raw) > MAX_ELEMENT_NAME_LEN or b"\0" in raw:
            raise ValueError(f"bad element name {name!r}")
        vals = tuple(_check_value(vtype, v) for v in values)
        if not 1 <= len(vals) <= MAX_VALUE_NUM:
            raise ValueError(f"element {name!r} needs 1..{MAX_VALUE_NUM} values")
        if _key(name) in self._elements:
            raise ValueError(f"element {name!r} already present")
        if len(self._elements) >= MAX_ELEMENT_NUM:
            raise ValueError("too many elements")
        self._elements[_key(name)] = Element(name, vtype, vals)

    def remove(self, name: str) -> None:
        """Remove the element if present (any type)."""
        self._elements.pop(_key(name), None)

    def element(self, name: str) -> Element | None:
        """The element of that name, whatever its type, or None."""
        return self._elements.get(_key(name))

    # An element's values all have the Python type of its ValueType (`add`
    # checks them, `decode` builds them so); the overloads tell mypy which.
    @overload
    def values(self, name: str,
               vtype: Literal[ValueType.INT, ValueType.INT64]) -> tuple[int, ...]: ...
    @overload
    def values(self, name: str, vtype: Literal[ValueType.DATA]) -> tuple[bytes, ...]: ...
    @overload
    def values(self, name: str,
               vtype: Literal[ValueType.STR, ValueType.UNISTR]) -> tuple[str, ...]: ...
    @overload
    def values(self, name: str, vtype: ValueType) -> tuple: ...

    def values(self, name: str, vtype: ValueType) -> tuple:
        """All values of the element if it has type `vtype`, else ()."""
        e = self._elements.get(_key(name))
        return e.values if e is not None and e.type == vtype else ()

    def count(self, name: str) -> int:
        """Number of values of the element (PackGetIndexCount); 0 if absent."""
        e = self._elements.get(_key(name))
        return 0 if e is None else len(e.values)

    def copy(self) -> Pack:
        """A shallow copy (elements are immutable)."""
        p = Pack()
        p._elements = dict(self._elements)
        return p

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._elements

    def __iter__(self) -> Iterator[Element]:
        return iter(self._elements.values())

    def __len__(self) -> int:
        return len(self._elements)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pack):
            return NotImplemented
        mine = {k: (e.type, e.values) for k, e in self._elements.items()}
        theirs = {k: (e.type, e.values) for k, e in other._elements.items()}
        return mine == theirs

    def __repr__(self) -> str:
        inner = ", ".join(f"{e.name}:{e.type.name}={list(e.values)!r}" for e in self)
        return f"Pack({inner})"

    # ---- typed adders (single value, then arrays) -------------------------

    def add_int(self, name: str, value: int) -> None:
        self.add(name, ValueType.INT, (value,))

    def add_ints(self, name: str, values: Iterable[int]) -> None:
        self.add(name, ValueType.INT, values)

    def add_int64(self, name: str, value: int) -> None:
        self.add(name, ValueType.INT64, (value,))

    def add_int64s(self, name: str, values: Iterable[int]) -> None:
        self.add(name, ValueType.INT64, values)

    def add_data(self, name: str, value: bytes) -> None:
        self.add(name, ValueType.DATA, (value,))

    def add_datas(self, name: str, values: Iterable[bytes]) -> None:
        self.add(name, ValueType.DATA, values)

    def add_str(self, name: str, value: str) -> None:
        self.add(name, ValueType.STR, (value,))

    def add_strs(self, name: str, values: Iterable[str]) -> None:
        self.add(name, ValueType.STR, values)

    def add_unistr(self, name: str, value: str) -> None:
        self.add(name, ValueType.UNISTR, (value,))

    def add_unistrs(self, name: str, values: Iterable[str]) -> None:
        self.add(name, ValueType.UNISTR, values)

    def add_bool(self, name: str, value: bool) -> None:
        self.add(name, ValueType.INT, (1 if value else 0,))

    def add_bools(self, name: str, values: Iterable[bool]) -> None:
        self.add(name, ValueType.INT, (1 if v else 0 for v in values))

    def add_time64(self, name: str, unix_ms: int) -> None:
        """Add a SoftEther time: Unix ms - 9 h; 0 (and pre-1970+9h) means none."""
        self.add_int64(name, max(unix_ms - TIME64_OFFSET_MS, 0) if unix_ms else 0)

    def add_ip(self, name: str, ip: IPAddress | str) -> None:
        """Add one address as SoftEther's four elements (PackAddIp)."""
        self.add_ips(name, (ip,))

    def add_ips(self, name: str, ips: Iterable[IPAddress | str]) -> None:
        """Add an array of addresses: `X`, `X@ipv6_bool`, `X@ipv6_array`,
        `X@ipv6_scope_id`, each with one value per address.

        IPv4: `X` = octets reversed (192.168.1.10 -> wire 0a 01 a8 c0), bool 0,
        array 16 zero bytes, scope 0. IPv6: bool 1, array = the 16 bytes,
        scope = the numeric scope id (`fe80::1%3`), `X` = 5.01's marker.
        """
        addrs = [ipaddress.ip_address(ip) if isinstance(ip, str) else ip for ip in ips]
        ints, flags, arrays, scopes = [], [], [], []
        for a in addrs:
            if a.version == 4:
                ints.append(int.from_bytes(a.packed, "little"))
                flags.append(0)
                arrays.append(bytes(16))
                scopes.append(0)
            else:
                scope = a.scope_id or "0"
                if not scope.isdigit():
                    raise ValueError(f"scope id of {a} must be numeric")
                ints.append(_IPV6_MARKER)
                flags.append(1)
                arrays.append(a.packed)
                scopes.append(int(scope))
        self.add_ints(name + "@ipv6_bool", flags)
        self.add_datas(name + "@ipv6_array", arrays)
        self.add_ints(name + "@ipv6_scope_id", scopes)
        self.add_ints(name, ints)

    def add_pencore(self, rand_bytes: RandBytes = os.urandom) -> None:
        """Add (or replace) the `pencore` padding: 0..999 bytes from `rand_bytes`.

        `rand_bytes(n)` must return n bytes; tests pass a deterministic one.
        """
        size = int.from_bytes(rand_bytes(4), "big") % PENCORE_MAX
        self.remove("pencore")
        self.add_data("pencore", rand_bytes(size))

    # ---- typed getters (absent or wrong type -> 0 / False / None) ----------

    def get_int(self, name: str, index: int = 0) -> int:
        v = _at(self.values(name, ValueType.INT), index)
        return 0 if v is None else v

    def get_ints(self, name: str) -> tuple[int, ...]:
        return self.values(name, ValueType.INT)

    def get_int64(self, name: str, index: int = 0) -> int:
        v = _at(self.values(name, ValueType.INT64), index)
        return 0 if v is None else v

    def get_bool(self, name: str, index: int = 0) -> bool:
        return self.get_int(name, index) != 0

    def get_data(self, name: str, index: int = 0) -> bytes | None:
        return _at(self.values(name, ValueType.DATA), index)

    def get_str(self, name: str, index: int = 0) -> str | None:
        return _at(self.values(name, ValueType.STR), index)

    def get_strs(self, name: str) -> tuple[str, ...]:
        return self.values(name, ValueType.STR)

    def get_unistr(self, name: str, index: int = 0) -> str | None:
        return _at(self.values(name, ValueType.UNISTR), index)

    def get_time64(self, name: str, index: int = 0) -> int:
        """Unix ms of a SoftEther time, 0 when absent or "none"."""
        v = self.get_int64(name, index)
        return v + TIME64_OFFSET_MS if v else 0

    def get_ip(self, name: str, index: int = 0) -> IPAddress | None:
        """Read an address the way PackGetIpEx does: `X@ipv6_bool` decides;
        an IPv4 address needs INT `X`. None when absent."""
        if self.get_bool(name + "@ipv6_bool", index):
            raw = (self.get_data(name + "@ipv6_array", index) or b"")[:16].ljust(16, b"\0")
            scope = self.get_int(name + "@ipv6_scope_id", index)
            addr = ipaddress.IPv6Address(raw)
            return ipaddress.IPv6Address(f"{addr}%{scope}") if scope else addr
        v = _at(self.values(name, ValueType.INT), index)
        if v is None:
            return None
        return ipaddress.IPv4Address(v.to_bytes(4, "little"))

    # ---- wire format --------------------------------------------------------

    def encode(self) -> bytes:
        """Serialize to PACK bytes (WritePack). ValueError past 512 MiB."""
        out = [struct.pack(">I", len(self._elements))]
        for e in self._elements.values():
            raw_name = e.name.encode("latin-1")
            out.append(struct.pack(">I", len(raw_name) + 1))
            out.append(raw_name)
            out.append(struct.pack(">II", e.type, len(e.values)))
            if e.type is ValueType.INT:
                out.append(struct.pack(f">{len(e.values)}I", *e.values))
            elif e.type is ValueType.INT64:
                out.append(struct.pack(f">{len(e.values)}Q", *e.values))
            else:
                for v in e.values:
                    if e.type is ValueType.DATA:
                        b = v
                    else:
                        b = v.encode("utf-8", "surrogateescape")
                        if e.type is ValueType.UNISTR:
                            b += b"\0"
                    out.append(struct.pack(">I", len(b)))
                    out.append(b)
        data = b"".join(out)
        if len(data) > MAX_PACK_SIZE:
            raise ValueError("PACK larger than 512 MiB")
        return data

    @classmethod
    def decode(cls, data: bytes, max_size: int = MAX_PACK_SIZE) -> Pack:
        """Parse PACK bytes (ReadPack); raise PackError on anything malformed.

        Bytes after the last element are ignored, as BufToPack ignores them.
        `max_size` bounds the input (httpmsg passes SoftEther's HTTP limit).
        """
        if len(data) > max_size:
            raise PackError(f"PACK of {len(data)} bytes exceeds {max_size}")
        return _Reader(memoryview(data)).read_pack()


class _Reader:
    """Cursor over PACK bytes; every read is bounds-checked."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.buf):
            raise PackError("PACK truncated")
        chunk = self.buf[self.pos:end]
        self.pos = end
        return chunk

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def sized(self, limit: int) -> bytes:
        n = self.u32()
        if n > limit:
            raise PackError(f"PACK value of {n} bytes exceeds {limit}")
        return self.take(n).tobytes()

    def read_pack(self) -> Pack:
        n = self.u32()
        if n > MAX_ELEMENT_NUM:
            raise PackError(f"PACK claims {n} elements")
        pack = Pack()
        elements = pack._elements
        for _ in range(n):
            e = self.read_element()
            k = _key(e.name)
            if k in elements:
                raise PackError(f"duplicate element {e.name!r}")
            elements[k] = e
        return pack

    def read_element(self) -> Element:
        name_len = self.u32()
        if name_len == 0:
            raise PackError("element name length 0")
        raw = self.take(name_len - 1).tobytes()[:MAX_ELEMENT_NAME_LEN]
        name = raw.split(b"\0", 1)[0].decode("latin-1")
        vtype_code, n = self.u32(), self.u32()
        try:
            vtype = ValueType(vtype_code)
        except ValueError:
            raise PackError(f"element {name!r} has unknown type {vtype_code}") from None
        if n == 0:
            raise PackError(f"element {name!r} has no values")
        if n > MAX_VALUE_NUM:
            raise PackError(f"element {name!r} claims {n} values")
        if vtype is ValueType.INT:
            values = struct.unpack(f">{n}I", self.take(4 * n))
        elif vtype is ValueType.INT64:
            values = struct.unpack(f">{n}Q", self.take(8 * n))
        elif vtype is ValueType.DATA:
            values = tuple(self.sized(MAX_VALUE_SIZE) for _ in range(n))
        else:
            limit = MAX_VALUE_SIZE - 1 if vtype is ValueType.STR else MAX_VALUE_SIZE
            values = tuple(
                self.sized(limit).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                for _ in range(n)
            )
        return Element(name, vtype, values)
