"""SoftEther's JSON-RPC value conventions: a key is a PACK element name plus
a type suffix (`HubName_str`, `NumSessions_u32`, `CreatedTime_dt`, ...).

SoftEther converts JSON to PACK by the suffix (JsonToPack in Mayaqua/Pack.c)
and ignores keys with an unknown suffix; missing values read as zero, empty
or false. `Params` gives handlers that same view of a request, with strict
type checks so that garbage answers ERR_INVALID_PARAMETER instead of raising
deep inside a handler. Outputs are plain dicts whose keys carry the suffix;
`dt()`, `b64()` and `ip()` render the values that need it.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as _dt
import ipaddress
from typing import Any

from node.softether.errors import Err

U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF
# Text fields: SoftEther keeps at most MAX_SIZE (512) characters of a note or
# a real name; twice that is room enough, and it keeps one field from making
# the saved configuration (and every push of it to the members) absurd.
MAX_TEXT_CHARS = 1024
MAX_PASSWORD_CHARS = 255   # MAX_PASSWORD_LEN (Cedar.h); the VPN login path has the same cap
# `_dt` values: the times a datetime can show (years 1970..9999), as Unix seconds.
MAX_TIME_S = 253402300799.999
# SoftEther renders a zero time through its fixed 9-hour offset (§8.2).
ZERO_TIME = "1970-01-01T09:00:00.000Z"


class InvalidParams(Exception):
    """A request field has the wrong JSON type or an out-of-range value.

    Raised by `Params`; the admin API answers ERR_INVALID_PARAMETER naming
    the field, and the daemon carries on.
    """

    code = Err.INVALID_PARAMETER

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")
        self.key = key


def dt(epoch_s: float | None) -> str:
    """Unix seconds → SoftEther's RFC 3339 UTC text with milliseconds."""
    if not epoch_s:
        return ZERO_TIME
    when = _dt.datetime.fromtimestamp(epoch_s, tz=_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_dt(text: str) -> float:
    """SoftEther's `_dt` text → Unix seconds (0 for the zero time); ValueError
    for text that is not an RFC 3339 time."""
    if text in ("", ZERO_TIME):
        return 0.0
    when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ip(addr: str | None) -> str:
    return addr or "0.0.0.0"


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        # SoftEther's ToBool: "true"/"yes"/"on"/non-zero numbers are true
        text = value.strip()
        if text.isdecimal() and text.isascii():
            return int(text) != 0
        return text.lower() in ("true", "yes", "on", "y", "t")
    raise InvalidParams(key, "expected a boolean")


def _check_text(key: str, value: str, limit: int) -> str:
    """Text that can be stored and sent on: valid Unicode (no lone
    surrogates, which JSON's \\ud800 escapes can carry), no NUL (SoftEther's
    strings end at one), at most `limit` characters."""
    if len(value) > limit:
        raise InvalidParams(key, f"{len(value)} characters, at most {limit} allowed")
    if "\0" in value:
        raise InvalidParams(key, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParams(key, "not valid Unicode text (a lone surrogate)") from None
    return value


def _check_time(key: str, epoch_s: float) -> float:
    if not 0.0 <= epoch_s <= MAX_TIME_S:   # NaN fails too
        raise InvalidParams(key, "time out of range (1970-01-01 .. 9999-12-31)")
    return epoch_s


def _to_int(key: str, value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(key, "expected an integer")
    if not 0 <= value <= limit:
        raise InvalidParams(key, f"out of range 0..{limit}")
    return value


class Params:
    """A request's params as SoftEther reads them: by name and type.

    `params.str("HubName")` reads `HubName_str`; a missing key gives the
    type's zero value, a present key of the wrong JSON type raises
    `InvalidParams`.
    """

    # The methods named after JSON types (`str`, `bool`) shadow the builtins in
    # this class body, so annotations below `str` spell `builtins.str`.

    def __init__(self, raw: dict[str, Any]):
        self._raw = raw

    def has(self, name: str, suffix: str) -> bool:
        return name + suffix in self._raw

    def _get(self, name: str, suffix: str) -> Any:
        return self._raw.get(name + suffix)

    def str(self, name: str, suffix: str = "_str", limit: int = MAX_TEXT_CHARS) -> str:
        """Text; InvalidParams if it is not a string, is longer than `limit`
        characters, or holds what cannot be stored (see _check_text)."""
        value = self._get(name, suffix)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise InvalidParams(name + suffix, "expected a string")
        return _check_text(name + suffix, value, limit)

    def password(self, name: builtins.str) -> builtins.str:
        """A plain-text password (`_str`), at most MAX_PASSWORD_CHARS characters."""
        return self.str(name, "_str", MAX_PASSWORD_CHARS)

    def utf(self, name: builtins.str) -> builtins.str:
        return self.str(name, "_utf")

    def u32(self, name: builtins.str) -> int:
        value = self._get(name, "_u32")
        return 0 if value is None else _to_int(name + "_u32", value, U32_MAX)

    def u64(self, name: builtins.str) -> int:
        value = self._get(name, "_u64")
        return 0 if value is None else _to_int(name + "_u64", value, U64_MAX)

    def bool(self, name: builtins.str) -> bool:
        value = self._get(name, "_bool")
        return False if value is None else _to_bool(name + "_bool", value)

    def u32_list(self, name: builtins.str) -> list[int]:
        value = self._get(name, "_u32")
        if value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        return [_to_int(name + "_u32", v, U32_MAX) for v in value]

    def bin(self, name: builtins.str) -> bytes:
        value = self._get(name, "_bin")
        if value is None:
            return b""
        if not isinstance(value, str):
            raise InvalidParams(name + "_bin", "expected Base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParams(name + "_bin", "not valid Base64") from None

    def dt(self, name: builtins.str) -> float:
        value = self._get(name, "_dt")
        if value is None:
            return 0.0
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # SoftEther takes a number as epoch ms
            return _check_time(name + "_dt", value / 1000.0 if value <= U64_MAX else float("nan"))
        if not isinstance(value, str):
            raise InvalidParams(name + "_dt", "expected RFC 3339 text")
        try:
            return _check_time(name + "_dt", parse_dt(value))
        except (ValueError, OverflowError):
            raise InvalidParams(name + "_dt", "not an RFC 3339 time") from None

    def ip(self, name: builtins.str) -> builtins.str:
        value = self.str(name, "_ip")
        if value == "":
            return "0.0.0.0"
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidParams(name + "_ip", "not an IP address") from None
