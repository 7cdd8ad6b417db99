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

Bodies are encoded and checked by the record codec, vpnbus/records.py
(``records.NATIVE``: bytes as msgpack bin), from the annotations; it lists the
supported field types. A field with a default may be absent; a field not
declared is refused, so two sides that disagree on a record fail loudly
instead of silently losing data.

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
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

from .records import NATIVE, RecordError

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


class Registry:
    """Type tag <-> message class (the field checks are vpnbus/records.py's)."""

    def __init__(self) -> None:
        self._by_tag: dict[str, type] = {}
        self._tag_of: dict[type, str] = {}

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

    def decode_body(self, tag: str, body: Any) -> Any:
        cls = self._by_tag.get(tag)
        if cls is None:
            raise BadMessage(Reason.UNKNOWN_TYPE, repr(tag)[:80])
        try:
            return NATIVE.decode(cls, body, tag)
        except RecordError as exc:
            raise BadMessage(Reason.BAD_FIELD, str(exc)) from None


REGISTRY = Registry()
"""The process-wide registry used by default by :func:`message` and the codec."""


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def message(tag: str, *, registry: Registry = REGISTRY) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a frozen, slotted, kw-only dataclass and register it.

    Declared with ``dataclass_transform`` so type checkers see the generated
    keyword-only ``__init__`` (and flag a missing or misspelt field).

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
    frame: bytes = msgpack.packb({
        "v": ENVELOPE_VERSION, "type": tag, "id": envelope.id,
        "reply_to": envelope.reply_to, "body": NATIVE.encode(envelope.message),
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
