"""The bus envelope and the message registry.

Every bus frame is one msgpack map, the envelope::

    {"v": 1, "type": "hub.create", "id": 17, "reply_to": None, "body": {...}}

``v`` is :data:`ENVELOPE_VERSION`; a peer speaking another version is refused
per frame (``Reason.WRONG_VERSION``), never guessed at. ``id`` is chosen by the
sender, unique per sender for the life of its endpoint (1, 2, 3, ...); a reply
carries the request's id in ``reply_to``. ``body`` holds the fields of one
message record.

Message records are frozen, slotted, keyword-only dataclasses registered with a
type tag. Declaring one (this is how ``controller/messages.py`` adds the VPN
messages; vpnbus itself knows none of them)::

    from vpnbus.envelope import message

    @message("hub.create")
    class CreateHub:
        '''Controller -> member: start an instance of a hub.'''
        name: str
        '''Hub name, as the admin typed it.'''
        dynamic: bool = False
        '''True for a dynamic hub (one instance cluster-wide).'''

Tags are dotted names; the ``bus.`` prefix belongs to vpnbus itself. Import
the declaring module before the first frame arrives (decode only knows
registered tags).

Supported field types, checked on decode from the annotations: ``int``,
``str``, ``bytes``, ``bool``, ``float`` (an int on the wire is accepted and
widened), ``None``, ``list[T]``, ``tuple[T, ...]``, ``dict[str, T]``,
``Optional[T]`` / ``T | None`` and other unions (first match wins), ``Enum``
subclasses (sent as their value) and nested dataclasses (sent as maps). A
field with a default may be absent; a field not declared is refused, so two
sides that disagree on a record fail loudly instead of silently losing data.

Decoding untrusted bytes raises exactly one error type, :class:`BadMessage`,
carrying a :class:`Reason`; the edge counts it and drops that frame. Nothing
here ever unpickles: msgpack is read with ``raw=False`` and
``strict_map_key=True``, and a frame larger than ``max_frame_bytes`` is refused
before it is parsed (msgpack then bounds every string/array/map by the frame
length).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

ENVELOPE_VERSION = 1
MAX_FRAME_BYTES = 1 << 20
"""Default cap on one encoded envelope (1 MiB); far above any control message."""

_ENVELOPE_KEYS = frozenset({"v", "type", "id", "reply_to", "body"})
_MAX_ID = (1 << 63) - 1

T = TypeVar("T")


class Reason(enum.StrEnum):
    """Why a frame from a peer was dropped (counter and log key)."""

    NOT_MSGPACK = "not_msgpack"
    OVERSIZED = "oversized"
    BAD_ENVELOPE = "bad_envelope"
    WRONG_VERSION = "wrong_version"
    UNKNOWN_TYPE = "unknown_type"
    BAD_FIELD = "bad_field"
    BAD_FRAMES = "bad_frames"
    """Wrong number of zmq frames (edge-level)."""


class BadMessage(Exception):
    """A peer sent a frame we cannot accept.

    Raised by :func:`decode` (and by the edges for frame-level faults). The
    peer is at fault; the receiver drops the frame, counts ``reason`` for that
    peer and keeps serving. ``detail`` is for logs only.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded frame: a message record plus its ids."""

    message: Any
    """An instance of a registered message class."""
    id: int
    """Sender-chosen id, unique per sender endpoint."""
    reply_to: int | None = None
    """For a reply: the id of the request it answers."""


Checker = Callable[[Any, str], Any]


class Registry:
    """Type tag <-> message class, plus each class's compiled field checks.

    Field checks are compiled lazily (first encode/decode), so records may use
    ``from __future__ import annotations`` and refer to classes declared later
    in their module.
    """

    def __init__(self) -> None:
        self._by_tag: dict[str, type] = {}
        self._tag_of: dict[type, str] = {}
        self._schemas: dict[type, list[tuple[str, Checker, bool]]] = {}

    def register(self, tag: str, cls: type) -> None:
        """Register ``cls`` (already a dataclass) under ``tag``.

        Raises ValueError if the tag or the class is already registered.
        """
        if not tag or not isinstance(tag, str):
            raise ValueError("a message type tag is a non-empty str")
        if tag in self._by_tag:
            raise ValueError(f"message type {tag!r} already registered "
                             f"by {self._by_tag[tag].__qualname__}")
        if cls in self._tag_of:
            raise ValueError(f"{cls.__qualname__} already registered")
        self._by_tag[tag] = cls
        self._tag_of[cls] = tag

    def tag_of(self, cls: type) -> str:
        """The type tag of a registered class; KeyError if not registered."""
        return self._tag_of[cls]

    def class_of(self, tag: str) -> type | None:
        return self._by_tag.get(tag)

    def __contains__(self, cls: object) -> bool:
        return cls in self._tag_of

    def schema(self, cls: type) -> list[tuple[str, Checker, bool]]:
        """[(field name, checker, required)] for a dataclass, compiled once."""
        compiled = self._schemas.get(cls)
        if compiled is None:
            hints = typing.get_type_hints(cls)
            compiled = []
            for f in dataclasses.fields(cls):
                required = (f.default is dataclasses.MISSING
                            and f.default_factory is dataclasses.MISSING)
                compiled.append((f.name, self._checker(hints[f.name]), required))
            self._schemas[cls] = compiled
        return compiled

    def _checker(self, tp: Any) -> Checker:
        """Build a function value, where -> checked value, or raise BadMessage."""
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is Any:
            raise TypeError("Any is not a checkable message field type")
        if tp is bool or tp is str or tp is bytes or tp is type(None) or tp is None:
            exact = type(None) if tp is None else tp
            return lambda v, where: v if type(v) is exact else _wrong(where, exact, v)
        if tp is int:
            # bool is an int subclass in Python; on the wire it is not.
            return lambda v, where: v if type(v) is int else _wrong(where, int, v)
        if tp is float:
            return lambda v, where: (float(v) if type(v) in (float, int)
                                     else _wrong(where, float, v))
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return lambda v, where: _enum_value(tp, v, where)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return lambda v, where: self._build(tp, v, where)
        if origin is typing.Union or origin is types.UnionType:
            options = [self._checker(a) for a in args]
            return lambda v, where: _first_match(options, v, where)
        if origin is list and len(args) == 1:
            item = self._checker(args[0])
            return lambda v, where: ([item(x, f"{where}[{i}]") for i, x in enumerate(v)]
                                     if type(v) is list else _wrong(where, list, v))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            item = self._checker(args[0])
            return lambda v, where: (tuple(item(x, f"{where}[{i}]") for i, x in enumerate(v))
                                     if type(v) is list else _wrong(where, list, v))
        if origin is dict and len(args) == 2 and args[0] is str:
            value = self._checker(args[1])
            return lambda v, where: (_check_map(v, value, where)
                                     if type(v) is dict else _wrong(where, dict, v))
        raise TypeError(f"unsupported message field type {tp!r}")

    def _build(self, cls: type[T], body: Any, where: str) -> T:
        """Construct ``cls`` from a wire map, checking every field."""
        if type(body) is not dict:
            _wrong(where, dict, body)
        schema = self.schema(cls)
        known = {name for name, _, _ in schema}
        extra = body.keys() - known
        if extra:
            raise BadMessage(Reason.BAD_FIELD, f"{where}: undeclared field(s) {sorted(extra)}")
        kwargs = {}
        for name, check, required in schema:
            if name in body:
                kwargs[name] = check(body[name], f"{where}.{name}")
            elif required:
                raise BadMessage(Reason.BAD_FIELD, f"{where}.{name}: missing")
        return cls(**kwargs)

    def decode_body(self, tag: str, body: Any) -> Any:
        cls = self._by_tag.get(tag)
        if cls is None:
            raise BadMessage(Reason.UNKNOWN_TYPE, repr(tag)[:80])
        return self._build(cls, body, tag)


def _wrong(where: str, expected: type, got: Any) -> Any:
    raise BadMessage(Reason.BAD_FIELD,
                     f"{where}: expected {expected.__name__}, got {type(got).__name__}")


def _enum_value(cls: type[enum.Enum], v: Any, where: str) -> enum.Enum:
    if type(v) not in (int, str):
        _wrong(where, cls, v)
    try:
        return cls(v)
    except ValueError:
        raise BadMessage(Reason.BAD_FIELD, f"{where}: {v!r} is not a {cls.__name__}") from None


def _first_match(options: list[Checker], v: Any, where: str) -> Any:
    for check in options:
        try:
            return check(v, where)
        except BadMessage:
            continue
    raise BadMessage(Reason.BAD_FIELD, f"{where}: {type(v).__name__} fits no alternative")


def _check_map(v: dict, value: Checker, where: str) -> dict:
    out = {}
    for k, x in v.items():
        if type(k) is not str:
            raise BadMessage(Reason.BAD_FIELD, f"{where}: non-str key")
        out[k] = value(x, f"{where}[{k!r}]")
    return out


REGISTRY = Registry()
"""The process-wide registry used by default by :func:`message` and the codec."""


def message(tag: str, *, registry: Registry = REGISTRY) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a frozen, slotted, kw-only dataclass and register it.

    The class must not already be a dataclass. Raises ValueError on a
    duplicate tag. Returns the new (slotted) class.
    """

    def wrap(cls: type[T]) -> type[T]:
        if "__dataclass_fields__" in cls.__dict__:
            raise TypeError(f"{cls.__qualname__}: let @message make the dataclass")
        made = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
        registry.register(tag, made)
        return made

    return wrap


def _to_wire(value: Any) -> Any:
    """Message record -> plain msgpack-able values (records become maps)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_wire(x) for x in value]
    if isinstance(value, dict):
        return {k: _to_wire(x) for k, x in value.items()}
    return value


def encode(envelope: Envelope, *, registry: Registry = REGISTRY,
           max_frame_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Envelope -> bytes.

    Local errors (our bug, not the peer's): KeyError for an unregistered
    class, ValueError for a bad id or a frame over ``max_frame_bytes``,
    TypeError for a value msgpack cannot carry.
    """
    tag = registry.tag_of(type(envelope.message))
    for name, ident in (("id", envelope.id), ("reply_to", envelope.reply_to)):
        if ident is not None and not (type(ident) is int and 0 <= ident <= _MAX_ID):
            raise ValueError(f"envelope {name} {ident!r} out of range")
    frame = msgpack.packb({
        "v": ENVELOPE_VERSION, "type": tag, "id": envelope.id,
        "reply_to": envelope.reply_to, "body": _to_wire(envelope.message),
    }, use_bin_type=True)
    if len(frame) > max_frame_bytes:
        raise ValueError(f"{tag}: encoded frame {len(frame)} bytes > {max_frame_bytes}")
    return frame


def decode(frame: bytes, *, registry: Registry = REGISTRY,
           max_frame_bytes: int = MAX_FRAME_BYTES) -> Envelope:
    """Untrusted bytes -> Envelope. Raises only :class:`BadMessage`."""
    if len(frame) > max_frame_bytes:
        raise BadMessage(Reason.OVERSIZED, f"{len(frame)} bytes > {max_frame_bytes}")
    try:
        # unpackb bounds each str/bin/array/map by len(frame) on its own.
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=True,
                              use_list=True, max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise BadMessage(Reason.NOT_MSGPACK, type(exc).__name__) from None
    if type(raw) is not dict:
        raise BadMessage(Reason.BAD_ENVELOPE, f"top level is {type(raw).__name__}")
    if "v" in raw and raw["v"] != ENVELOPE_VERSION:
        raise BadMessage(Reason.WRONG_VERSION, repr(raw["v"])[:40])
    if raw.keys() != _ENVELOPE_KEYS:
        raise BadMessage(Reason.BAD_ENVELOPE, f"keys {sorted(map(str, raw.keys()))[:8]}")
    ident, reply_to, tag = raw["id"], raw["reply_to"], raw["type"]
    if type(ident) is not int or not 0 <= ident <= _MAX_ID:
        raise BadMessage(Reason.BAD_ENVELOPE, "id")
    if reply_to is not None and (type(reply_to) is not int or not 0 <= reply_to <= _MAX_ID):
        raise BadMessage(Reason.BAD_ENVELOPE, "reply_to")
    if type(tag) is not str:
        raise BadMessage(Reason.BAD_ENVELOPE, "type")
    return Envelope(message=registry.decode_body(tag, raw["body"]), id=ident, reply_to=reply_to)
