"""Checked records: dataclasses <-> plain values, driven by the annotations.

One codec for every record that crosses a boundary: the bus messages
(vpnbus/envelope.py puts them in msgpack) and, above vpnbus, the node's
config file (node/state/model.py puts it in JSON). vpnbus knows no record
of its own here; any dataclass works.

``Codec.encode(record)`` gives plain values: maps with str keys, lists, str,
int, float, bool, None, and bytes in the codec's form. ``Codec.decode(cls,
plain)`` checks plain values against ``cls``'s annotations and builds the
record, or raises :class:`RecordError` naming the path of the first bad
value (``config.hubs[0].online: expected bool, got str``).

Supported field types: ``int``, ``str``, ``bytes``, ``bool``, ``float`` (an
int is accepted and widened), ``None``, ``list[T]``, ``tuple[T, ...]``,
``dict[str, T]``, ``Optional[T]`` / ``T | None`` and other unions (first
match wins), ``Enum`` subclasses (carried as their value) and nested
dataclasses (carried as maps). Checks are exact: a bool is not an int, as on
the wire. A field with a default may be absent.

A codec differs from another only by its parameters, never by its checks:

- ``bytes_form``: msgpack carries bytes as they are (``BytesForm.NATIVE``);
  JSON has none, so the config file keeps them as lower-case hex text
  (``BytesForm.HEX``), the format existing state directories hold.
- ``unknown_fields``: ``"refuse"`` (the bus: two sides that disagree on a
  record fail loudly instead of silently losing data) or ``"ignore"`` (the
  config file, which has always skipped keys it does not know).

:func:`convert` copies a record into another record type with the same
field names (a config ``Hub`` into the bus ``HubConfig`` and back), through
the plain form, so every value is checked again and a field the target
lacks is refused instead of dropped.

Schemas are compiled once per (codec, class), lazily, so records may use
``from __future__ import annotations`` and name classes declared later.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Check = Callable[[Any, str], Any]
"""(plain value, path) -> checked value, or RecordError."""
Encode = Callable[[Any], Any]


class RecordError(ValueError):
    """Plain values do not fit a record: ``path`` names the value, ``problem`` says why.

    Raised by :meth:`Codec.decode` and :func:`convert`. Whoever handed over
    the values is at fault; each edge turns this into its own refusal (the
    bus: ``BadMessage(Reason.BAD_FIELD)``; the config: ConfigCorrupt).
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class BytesForm(enum.Enum):
    """How a codec carries ``bytes``."""

    NATIVE = "native"
    """As bytes (msgpack bin)."""
    HEX = "hex"
    """As lower-case hex text (JSON)."""


class Codec:
    """Encode/decode dataclass records to/from plain values; see the module doc."""

    def __init__(self, *, bytes_form: BytesForm = BytesForm.NATIVE,
                 unknown_fields: Literal["refuse", "ignore"] = "refuse") -> None:
        self.bytes_form = bytes_form
        self.refuse_unknown = unknown_fields == "refuse"
        self._decoders: dict[type, Check] = {}
        self._encoders: dict[type, Encode] = {}

    # -- decode -------------------------------------------------------------

    def decode(self, cls: type[T], plain: Any, where: str | None = None) -> T:
        """Check ``plain`` against ``cls`` and build it. Raises RecordError
        (path rooted at ``where``, default the class name); TypeError if
        ``cls`` has a field type this codec cannot check (our bug)."""
        result: T = self._record_check(cls)(plain, cls.__name__ if where is None else where)
        return result

    def _record_check(self, cls: type) -> Check:
        check = self._decoders.get(cls)
        if check is not None:
            return check
        fields: list[tuple[str, type, Check, bool]] = []
        names: set[str] = set()
        refuse_unknown = self.refuse_unknown

        def build(plain: Any, where: str) -> Any:
            if type(plain) is not dict:
                _wrong(where, dict, plain)
            if refuse_unknown and not plain.keys() <= names:
                extra = sorted(map(str, plain.keys() - names))
                raise RecordError(where, f"undeclared field(s) {extra}")
            values = {}
            for name, exact, check, required in fields:
                if name in plain:
                    v = plain[name]
                    # The common case needs no call and no path text.
                    values[name] = v if type(v) is exact else check(v, f"{where}.{name}")
                elif required:
                    raise RecordError(f"{where}.{name}", "missing")
            return cls(**values)

        # Registered before the fields compile, so a record may contain itself.
        self._decoders[cls] = build
        try:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                required = (f.default is dataclasses.MISSING
                            and f.default_factory is dataclasses.MISSING)
                tp = hints[f.name]
                fields.append((f.name, self._exact_type(tp), self._check(tp), required))
                names.add(f.name)
        except BaseException:
            del self._decoders[cls]
            raise
        return build

    def _exact_type(self, tp: Any) -> type:
        """The type a plain value of field type ``tp`` has when it needs no
        conversion, else a type no value has."""
        if tp in (bool, str, int, float) or (tp is bytes and self.bytes_form is BytesForm.NATIVE):
            return typing.cast(type, tp)
        return _NoValue

    def _check(self, tp: Any) -> Check:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            raise TypeError("Any is not a checkable record field type")
        if tp is bytes:
            return _hex_bytes if self.bytes_form is BytesForm.HEX else _exact(bytes)
        if tp in (bool, str, int, type(None), None):
            return _exact(type(None) if tp is None else tp)
        if tp is float:
            return _float
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return lambda v, where: _enum_value(tp, v, where)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return lambda v, where: self._record_check(tp)(v, where)
        if origin is typing.Union or origin is types.UnionType:
            options = [self._check(a) for a in args]
            return lambda v, where: _first_match(options, v, where)
        if origin is list and len(args) == 1:
            item = self._check(args[0])
            return lambda v, where: ([item(x, f"{where}[{i}]") for i, x in enumerate(v)]
                                     if type(v) is list else _wrong(where, list, v))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item = self._check(args[0])
            return lambda v, where: (tuple(item(x, f"{where}[{i}]") for i, x in enumerate(v))
                                     if type(v) is list else _wrong(where, list, v))
        if origin is dict and len(args) == 2 and args[0] is str:
            value = self._check(args[1])
            return lambda v, where: (_check_map(v, value, where)
                                     if type(v) is dict else _wrong(where, dict, v))
        raise TypeError(f"unsupported record field type {tp!r}")

    # -- encode -------------------------------------------------------------

    def encode(self, record: Any) -> dict[str, Any]:
        """A dataclass instance -> a plain map (nested records become maps).

        Values are not checked here (decode checks); TypeError for a class
        with a field type this codec does not support."""
        encoded: dict[str, Any] = self._record_encoder(type(record))(record)
        return encoded

    def _record_encoder(self, cls: type) -> Encode:
        enc = self._encoders.get(cls)
        if enc is not None:
            return enc
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__qualname__} is not a record (dataclass)")
        plan: list[tuple[str, Encode | None]] = []

        def encode(record: Any) -> dict[str, Any]:
            return {name: getattr(record, name) if enc_field is None else enc_field(getattr(record, name))
                    for name, enc_field in plan}

        self._encoders[cls] = encode
        try:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                plan.append((f.name, self._encoder(hints[f.name])))
        except BaseException:
            del self._encoders[cls]
            raise
        return encode

    def _encoder(self, tp: Any) -> Encode | None:
        """The encoder of one field type; None when the value is already plain."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bytes:
            return bytes.hex if self.bytes_form is BytesForm.HEX else None
        if tp in (int, str):
            return _enum_plain   # an IntEnum/StrEnum member is carried as its plain value
        if tp in (bool, float, type(None), None):
            return None
        if tp is Any:
            raise TypeError("Any is not a checkable record field type")
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_plain
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            # By the value's own class: a subclass's extra fields are carried
            # (and refused by a decoder that lacks them), never cut off.
            return lambda v: self._record_encoder(type(v))(v)
        if origin is typing.Union or origin is types.UnionType:
            for a in args:
                self._encoder(a)        # refuse unsupported alternatives now
            return self._any
        if (origin is list and len(args) == 1) or (origin is tuple and len(args) == 2
                                                    and args[1] is Ellipsis):
            item = self._encoder(args[0])
            return list if item is None else (lambda v: [item(x) for x in v])
        if origin is dict and len(args) == 2 and args[0] is str:
            value = self._encoder(args[1])
            return dict if value is None else (lambda v: {k: value(x) for k, x in v.items()})
        raise TypeError(f"unsupported record field type {tp!r}")

    def _any(self, v: Any) -> Any:
        """Encode by the value's own type (union fields)."""
        if isinstance(v, bytes):
            return v.hex() if self.bytes_form is BytesForm.HEX else v
        if isinstance(v, enum.Enum):
            return v.value
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return self.encode(v)
        if isinstance(v, (list, tuple)):
            return [self._any(x) for x in v]
        if isinstance(v, dict):
            return {k: self._any(x) for k, x in v.items()}
        return v


NATIVE = Codec()
"""bytes as bytes, unknown fields refused: the bus (msgpack)."""


def convert(record: Any, cls: type[T], *, codec: Codec = NATIVE) -> T:
    """Copy ``record`` into ``cls`` by field name, checked by ``cls``'s annotations.

    Nested records convert the same way (``list[User]`` -> ``list[UserConfig]``).
    A field ``cls`` lacks raises RecordError (under ``codec``'s "refuse"); a
    field only ``cls`` has takes its default, or raises RecordError if it has none.
    """
    return codec.decode(cls, codec.encode(record), type(record).__name__)


class _NoValue:
    """No plain value is of this type."""


def _exact(kind: type) -> Check:
    def check(v: Any, where: str) -> Any:
        return v if type(v) is kind else _wrong(where, kind, v)
    return check


def _float(v: Any, where: str) -> float:
    return float(v) if type(v) in (float, int) else _wrong(where, float, v)


def _hex_bytes(v: Any, where: str) -> bytes:
    if type(v) is not str:
        raise RecordError(where, f"expected hex text, got {type(v).__name__}")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise RecordError(where, "not hex") from None


def _wrong(where: str, expected: type, got: Any) -> Any:
    raise RecordError(where, f"expected {expected.__name__}, got {type(got).__name__}")


def _enum_value(cls: type[enum.Enum], v: Any, where: str) -> enum.Enum:
    if type(v) not in (int, str):
        _wrong(where, cls, v)
    try:
        return cls(v)
    except ValueError:
        raise RecordError(where, f"{v!r} is not a {cls.__name__}") from None


def _enum_plain(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def _first_match(options: list[Check], v: Any, where: str) -> Any:
    for check in options:
        try:
            return check(v, where)
        except RecordError:
            continue
    raise RecordError(where, f"{type(v).__name__} fits no alternative")


def _check_map(v: dict[Any, Any], value: Check, where: str) -> dict[str, Any]:
    out = {}
    for k, x in v.items():
        if type(k) is not str:
            raise RecordError(where, "non-str key")
        out[k] = value(x, f"{where}[{k!r}]")
    return out
