"""PACK ⇄ JSON-RPC fields: one admin API, two encodings.

SoftEther derives its JSON-RPC names from PACK element names and types
(Mayaqua/Pack.c PackToJson, JsonToPack, DetermineJsonSuffixForPackElement;
softether-protocol.md §8.2): a JSON key is the element name plus a suffix
that names the type. This module applies that rule both ways, with no
per-method table, so every admin handler (node/admin/methods_*.py), written
against the JSON names, also serves the binary RPC of vpncmd.

PACK → JSON (a binary request becomes handler params). A PACK INT carries
no hint whether it is a number or a bool, nor an INT64 whether it is a
count or a time (SoftEther keeps such hints in memory, not on the wire), so
an element is offered under every name its type can be read as, exactly as
SoftEther's readers accept it (PackGetInt / PackGetBool read the same INT):

    INT     X_u32 (number) and X_bool         INT64   X_u64 and X_dt (epoch ms)
    STR     X_str      UNISTR  X_utf          DATA    X_bin (Base64)
    X + X@ipv6_bool/_array/_scope_id (the four IP elements)   X_ip (text)

An element with several values becomes a JSON array; `function_name` (the
call's name) and `pencore` (padding) are not params. Names match
case-insensitively, as PACK names do (`CaselessParams`).

JSON → PACK (a handler's result becomes the reply), as JsonToPack: the suffix
picks the type (`_u32`/`_bool` INT, `_u64` INT64, `_dt` INT64 time with the
9-hour offset, `_str` STR, `_utf` UNISTR, `_bin` DATA, `_ip` the four IP
elements); a key with another suffix is skipped; an array of scalars is one
element with N values; an array of objects (a group such as `HubList`) is
flattened into one indexed element per field, the group name dropped, and a
field missing from some rows is the type's zero there (SoftEther's
PackAdd*Ex with index and total does the same). An empty array adds nothing
(a PACK element has at least one value): SoftEther's readers count rows with
PackGetIndexCount, which then reads 0.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Mapping

from node.admin.jsonvalue import parse_dt
from node.softether.pack import TIME64_OFFSET_MS, Pack, ValueType

IP_HELPERS = ("@ipv6_bool", "@ipv6_array", "@ipv6_scope_id")
NOT_PARAMS = frozenset(("function_name", "pencore"))

_ZERO: dict[ValueType, object] = {ValueType.INT: 0, ValueType.INT64: 0, ValueType.DATA: b"",
                                  ValueType.STR: "", ValueType.UNISTR: ""}
_IP = None  # the "type" of a `_ip` field: written as the four IP elements at the end
Slot = ValueType | None


class JsonPackError(ValueError):
    """A JSON value cannot become a PACK value (a handler result we cannot
    encode: a bug on our side, answered as ERR_INTERNAL_ERROR)."""


# ---- PACK → JSON ----------------------------------------------------------------

def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


class CaselessParams(dict[str, Any]):
    """Params whose names match case-insensitively, as PACK element names do
    (StrCmpi): a handler reading `HubName_str` finds an element sent as
    `hubname`. Keys are stored lower-case."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def pack_to_params(pack: Pack) -> CaselessParams:
    """A request PACK as the JSON params a handler reads (module doc)."""
    out = CaselessParams()
    for e in pack:
        lower = e.name.lower()
        if lower in NOT_PARAMS or any(lower.endswith(h) for h in IP_HELPERS):
            continue
        if e.type is ValueType.INT:
            if f"{e.name}@ipv6_bool" in pack:
                addrs = [pack.get_ip(e.name, i) for i in range(len(e.values))]
                out[f"{e.name}_ip"] = _one_or_many([str(a) if a is not None else "0.0.0.0" for a in addrs])
                continue
            out[f"{e.name}_u32"] = _one_or_many(list(e.values))
            out[f"{e.name}_bool"] = _one_or_many([v != 0 for v in e.values])
        elif e.type is ValueType.INT64:
            out[f"{e.name}_u64"] = _one_or_many(list(e.values))
            out[f"{e.name}_dt"] = _one_or_many([v + TIME64_OFFSET_MS if v else 0 for v in e.values])
        elif e.type is ValueType.STR:
            out[f"{e.name}_str"] = _one_or_many(list(e.values))
        elif e.type is ValueType.UNISTR:
            out[f"{e.name}_utf"] = _one_or_many(list(e.values))
        else:
            out[f"{e.name}_bin"] = _one_or_many([base64.b64encode(v).decode("ascii") for v in e.values])
    return out


# ---- JSON → PACK ----------------------------------------------------------------

@dataclass(slots=True)
class _Slots:
    """One element being built: its name, type and one value per row."""

    name: str
    vtype: Slot
    values: list[Any] = field(default_factory=list)


def _split(key: str) -> tuple[str, str]:
    name, sep, suffix = key.rpartition("_")
    return (name, suffix) if sep and name else (key, "")


def _time64(key: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            unix_ms = round(parse_dt(value) * 1000)
        except ValueError:
            raise JsonPackError(f"{key}: not an RFC 3339 time") from None
    else:
        unix_ms = _number(key, value)
    return max(unix_ms - TIME64_OFFSET_MS, 0) if unix_ms else 0


def _number(key: str, value: Any) -> int:
    if not isinstance(value, (int, float)):
        raise JsonPackError(f"{key}: expected a number, got {type(value).__name__}")
    return int(value)


def _typed(key: str, suffix: str, value: Any) -> tuple[Slot, Any] | None:
    """(PACK type, PACK value) of one JSON value, None for an unknown suffix."""
    if suffix in ("u32", "bool"):
        return ValueType.INT, int(bool(value)) if suffix == "bool" else _number(key, value) & 0xFFFFFFFF
    if suffix == "u64":
        return ValueType.INT64, _number(key, value) & 0xFFFFFFFFFFFFFFFF
    if suffix == "dt":
        return ValueType.INT64, _time64(key, value)
    if suffix in ("str", "utf", "ip"):
        if not isinstance(value, str):
            raise JsonPackError(f"{key}: expected text, got {type(value).__name__}")
        if suffix == "ip":
            try:
                return _IP, ipaddress.ip_address(value or "0.0.0.0")
            except ValueError:
                raise JsonPackError(f"{key}: not an IP address") from None
        return (ValueType.STR if suffix == "str" else ValueType.UNISTR), value
    if suffix == "bin":
        if not isinstance(value, str):
            raise JsonPackError(f"{key}: expected Base64 text, got {type(value).__name__}")
        try:
            return ValueType.DATA, base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise JsonPackError(f"{key}: not Base64 text") from None
    return None


def _zero(vtype: Slot) -> object:
    return ipaddress.IPv4Address(0) if vtype is None else _ZERO[vtype]


def result_to_pack(result: Mapping[str, Any]) -> Pack:
    """A handler's JSON result as the reply PACK (module doc); JsonPackError
    if a value does not fit its suffix."""
    slots: dict[str, _Slots] = {}
    for key, value in result.items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    for key2, value2 in item.items():
                        _put(slots, key2, value2, i, len(value))
                else:
                    _put(slots, key, item, i, len(value))
        elif not isinstance(value, Mapping):
            _put(slots, key, value, 0, 1)
    pack = Pack()
    for slot in slots.values():
        try:
            if slot.vtype is None:
                pack.add_ips(slot.name, slot.values)
            else:
                pack.add(slot.name, slot.vtype, slot.values)
        except ValueError as e:
            raise JsonPackError(f"{slot.name}: {e}") from None
    return pack


def _put(slots: dict[str, _Slots], key: str, value: Any, index: int, total: int) -> None:
    """Set row `index` (of `total`) of the element `key` names; skip an unknown suffix."""
    name, suffix = _split(key)
    typed = _typed(key, suffix, value)
    if typed is None:
        return
    vtype, packed = typed
    slot = slots.get(name.lower())
    if slot is None:
        slot = slots[name.lower()] = _Slots(name, vtype, [_zero(vtype)] * total)
    elif slot.vtype != vtype:
        raise JsonPackError(f"{key}: element {name!r} already has another type")
    if index >= len(slot.values):
        slot.values.extend([_zero(vtype)] * (index + 1 - len(slot.values)))
    slot.values[index] = packed
