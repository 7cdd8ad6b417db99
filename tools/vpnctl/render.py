"""Human formatting of JSON-RPC values and vpncmd-like tables (tabulate).

JSON field names carry a type suffix (softether-protocol.md §8.2):
_u32/_u64 numbers, _bool, _dt (RFC 3339 UTC text), _str/_utf text, _bin
(Base64), _ip. `format_value` picks the human form from the suffix so every
field can be shown even when a verb has no explicit column for it:
numbers with thousands separators (as vpncmd prints them), byte counts with
a unit, Yes/No, local date and time, hex for short binary.

SoftEther writes "no time" as a zero that its JSON conversion shifts by nine
hours (1970-01-01T09:00:00.000Z), so any 1970 date is shown as "(None)".
"""

from __future__ import annotations

import base64
import re
import datetime as _dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tabulate import tabulate

NONE_TEXT = "(None)"
_PLAIN_NUMBER = re.compile(r"Port|Id_|Key_|Ver|Build|Type|Code|Error")
Formatter = Callable[[Any], str]


def fmt_int(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int):
        return str(v)
    return f"{v:,}"


def fmt_bytes(v: Any) -> str:
    """"1,234,567 bytes (1.2 MiB)"; small values without the unit suffix."""
    if isinstance(v, bool) or not isinstance(v, int):
        return str(v)
    text = f"{v:,} bytes"
    size, unit = float(v), ""
    for u in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, u
    return f"{text} ({size:.1f} {unit})" if unit else text


def fmt_bool(v: Any) -> str:
    if isinstance(v, bool):
        return "Yes" if v else "No"
    return str(v)


def parse_dt(v: Any) -> _dt.datetime | None:
    """The datetime of a _dt value, or None for SoftEther's "no time"."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        # A number is milliseconds since the epoch; 0 means none.
        return None if v <= 0 else _dt.datetime.fromtimestamp(v / 1000, _dt.timezone.utc)
    if not isinstance(v, str) or not v:
        return None
    try:
        t = _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return None if t.year <= 1970 else t


def fmt_dt(v: Any) -> str:
    t = parse_dt(v)
    if t is None:
        return NONE_TEXT if not isinstance(v, str) or v == "" or v.startswith("1970") else v
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _b64(v: Any) -> bytes | None:
    """The bytes of a _bin value, or None when it is not Base64 text."""
    if not isinstance(v, str):
        return None
    try:
        return base64.b64decode(v, validate=True)
    except ValueError:
        return None


def fmt_bin(v: Any) -> str:
    """Hex for up to 32 bytes (hashes, MACs, ids); a length for larger blobs."""
    raw = _b64(v)
    if raw is None:
        return str(v)
    if not raw:
        return NONE_TEXT
    if len(raw) <= 32:
        return raw.hex().upper()
    return f"({len(raw):,} bytes of binary data)"


def fmt_mac(v: Any) -> str:
    raw = _b64(v)
    if raw is None:
        return str(v)
    return "-".join(f"{b:02X}" for b in raw) if raw else NONE_TEXT


def fmt_text(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return NONE_TEXT if v == "" else str(v)


def enum_fmt(names: dict[int, str]) -> Formatter:
    """A formatter showing names[v], or the raw number for unknown values."""

    def fmt(v: Any) -> str:
        return names.get(v, str(v)) if isinstance(v, int) else str(v)

    return fmt


def format_value(key: str, value: Any) -> str:
    """Human text of one JSON-RPC field, chosen by its type suffix."""
    if isinstance(value, list):
        return ", ".join(format_value(key, v) for v in value)
    suffix = key.rsplit("_", 1)[-1] if "_" in key else ""
    if suffix == "bool":
        return fmt_bool(value)
    if suffix == "dt":
        return fmt_dt(value)
    if suffix == "bin":
        return fmt_bin(value)
    if suffix in ("u32", "u64"):
        if "Bytes" in key or "Size" in key:
            return fmt_bytes(value)
        # Identifiers and port numbers read wrong with thousands separators.
        return str(value) if _PLAIN_NUMBER.search(key) else fmt_int(value)
    return fmt_text(value)


def strip_suffix(key: str) -> str:
    """"NumSessions_u32" -> "NumSessions" (for generic labels)."""
    base, sep, suffix = key.rpartition("_")
    return base if sep and suffix in {"u32", "u64", "bool", "dt", "str", "utf", "bin", "ip"} else key


# A field spec: (label, key) or (label, key, formatter).
Field = tuple[str, str] | tuple[str, str, Formatter]


def _cell(obj: dict[str, Any], field: Field) -> str:
    key = field[1]
    if key not in obj:
        return ""
    if len(field) == 3:
        return field[2](obj[key])
    return format_value(key, obj[key])


def item_value_table(obj: dict[str, Any], fields: Sequence[Field] | None = None) -> str:
    """One object as vpncmd's two-column "Item | Value" table.

    With `fields`, only those keys in that order (missing keys are skipped);
    without, every scalar key with a generic label.
    """
    rows: list[tuple[str, str]] = []
    if fields is None:
        for key in sorted(obj):
            if not isinstance(obj[key], dict) and not _is_record_list(obj[key]):
                rows.append((strip_suffix(key), format_value(key, obj[key])))
    else:
        rows = [(f[0], _cell(obj, f)) for f in fields if f[1] in obj]
    return rows_table(rows)


def rows_table(rows: Sequence[tuple[str, str]]) -> str:
    """Prepared (label, text) rows as the "Item | Value" table."""
    return tabulate(rows, headers=["Item", "Value"], tablefmt="presto", disable_numparse=True)


def list_table(items: Iterable[dict[str, Any]], columns: Sequence[Field]) -> str:
    """Records as a table with one column per field (vpncmd's list view)."""
    rows = [[_cell(item, c) for c in columns] for item in items]
    return tabulate(rows, headers=[c[0] for c in columns], tablefmt="presto", disable_numparse=True)


def _is_record_list(v: Any) -> bool:
    return isinstance(v, list) and any(isinstance(x, dict) for x in v)
