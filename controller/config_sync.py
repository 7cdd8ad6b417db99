"""Configuration sync: the cluster hubs reaching every member, by config
serial, incrementally and in bounded frames. No I/O.

Controller side, `ConfigSync` (driven by ControllerCore):
- `configure` with the controller's hubs and config serial computes the
  change since the last serial (hubs created, changed or deleted; users put
  or deleted) as one `ConfigDelta`, kept in a log of the last `DELTA_LOG`
  changes. A change of nothing (another part of the config) sends nothing.
- A member it knows is one delta per change: it applies a delta only at the
  delta's base serial and answers `ConfigAck` with its serial, so a member
  that missed one (a gap) shows at once.
- A member whose serial it does not know (new, rejoined) is first asked
  with an empty delta (a probe); a member behind the log, or with nothing,
  gets a full sync: the configuration at one serial cut in `ConfigChunk`s of
  at most `chunk_bytes` (256 KiB; the bus refuses frames over 1 MiB), sent
  one at a time, each acknowledged (`ChunkAck` says which part it wants
  next, so a lost part or a reconnection resumes where it stopped), applied
  by the member as a whole after the last part. Then the deltas since
  that serial follow.
- A push that fails (timeout, refusal, unreachable) shows in the member's
  `SyncStatus` with the reason and is retried with a backoff (1 s doubling
  to 30 s). An item that can never be sent (a user or hub larger than half
  a chunk, or text that cannot be encoded, e.g. a lone surrogate) is left
  out of every delta and full sync -- the rest still goes -- and stays in
  `undeliverable`, shown for every member, until it is changed or deleted.

Member side, `ConfigReceiver`: the member's copy of the cluster hubs as
records and its serial; applies deltas and assembles chunks, and says what
changed (`ConfigUpdate`) so the member rewrites only those hubs.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from controller.messages import ChunkAck, ConfigAck, ConfigChunk, ConfigDelta, HubChange, HubConfig, UserConfig
from controller.registry import hub_key

CHUNK_BYTES: Final = 256 * 1024
"""At most this much configuration in one ConfigChunk or ConfigDelta (the bus frame limit is 1 MiB)."""
DELTA_LOG: Final = 64
"""Changes kept for members a few changes behind; further behind means a full sync."""
RETRY_FIRST_S: Final = 1.0
RETRY_MAX_S: Final = 30.0
NO_SERIAL: Final = -1
"""A member's serial before it holds any configuration."""

_Item = tuple[str, str]
"""(hub key, user key; "" for the hub's settings)."""


class SyncState(enum.StrEnum):
    UNKNOWN = "not joined"
    PROBING = "checking serial"
    SENDING = "sending changes"
    FULL_SYNC = "full sync"
    IN_SYNC = "in sync"
    FAILED = "push failed"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """One member's configuration sync as the member list shows it."""

    serial: int
    """The serial the member acknowledged (NO_SERIAL: none yet)."""
    controller_serial: int
    state: SyncState
    detail: str = ""
    """Progress of a full sync, why a push failed, what cannot be sent."""

    def text(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else str(self.state)


@dataclass(frozen=True, slots=True)
class Push:
    """Send `message` to `member_id` as a request; report the outcome with
    `generation` (acknowledged / failed)."""

    member_id: int
    generation: int
    message: ConfigDelta | ConfigChunk


@dataclass(frozen=True, slots=True)
class _Snapshot:
    serial: int
    chunks: tuple[tuple[HubConfig, ...], ...]


@dataclass(slots=True)
class _FullSync:
    sync_id: int
    snapshot: _Snapshot
    next_index: int = 0


@dataclass(slots=True)
class _Member:
    joined: bool = False
    serial: int | None = None
    """Acknowledged serial; None = not known (probe it)."""
    full: _FullSync | None = None
    in_flight: bool = False
    generation: int = 0
    """Outcomes of an older generation (before a rejoin) are ignored."""
    retry_at: float | None = None
    failures: int = 0
    problem: str = ""


class Undeliverable(ValueError):
    """An item that no frame can carry."""


def size_bound(value: object) -> int:
    """An upper bound of `value`'s msgpack size as the bus encodes records.
    Raises Undeliverable for text UTF-8 cannot encode (a lone surrogate)."""
    if isinstance(value, str):
        try:
            return len(value.encode("utf-8")) + 5
        except UnicodeEncodeError as exc:
            raise Undeliverable(f"text cannot be encoded ({exc.reason} at position {exc.start})") from None
    if isinstance(value, (bytes, bytearray)):
        return len(value) + 5
    if value is None or isinstance(value, (bool, int, float)):
        return 9
    if isinstance(value, (list, tuple)):
        return 5 + sum(size_bound(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return 5 + sum(len(f.name) + 5 + size_bound(getattr(value, f.name)) for f in dataclasses.fields(value))
    raise TypeError(f"no size bound for {type(value).__name__}")


def _settings(hub: HubConfig) -> HubConfig:
    return hub if not hub.users else replace(hub, users=[])


def _item_text(item: _Item, name: str) -> str:
    return f"hub {name!r}" if not item[1] else f"user {item[1]!r} of hub {name!r}"


class ConfigSync:
    """The controller's side: what each member holds and what it gets next."""

    def __init__(self, hubs: Sequence[HubConfig], serial: int, *, chunk_bytes: int = CHUNK_BYTES,
                 delta_log: int = DELTA_LOG) -> None:
        self.serial = serial
        self.chunk_bytes = chunk_bytes
        self.max_item_bytes = chunk_bytes // 2  # a hub's settings and one user always fit one chunk
        self.delta_log = delta_log
        self._hubs = {hub_key(h.name): h for h in hubs}
        self._deltas: dict[int, ConfigDelta | None] = {}
        """Base serial → the delta to the next serial (None: too large, a full sync instead)."""
        self._snapshot: _Snapshot | None = None
        self._members: dict[int, _Member] = {}
        self._next_sync_id = 1
        self.undeliverable: dict[_Item, str] = {}
        """Items left out of what members get: why (one line each)."""
        self._notes: list[str] = []

    # ----- inputs --------------------------------------------------------------------

    def configure(self, hubs: Sequence[HubConfig], serial: int) -> bool:
        """The controller's hubs at `serial`. Returns whether they changed."""
        new = {hub_key(h.name): h for h in hubs}
        changes = self._diff(self._hubs, new)
        self._hubs = new
        if not changes:
            return False
        serial = max(serial, self.serial + 1)
        delta: ConfigDelta | None = ConfigDelta(base_serial=self.serial, serial=serial, changes=changes)
        if size_bound(delta) > self.chunk_bytes:
            delta = None  # a bulk change: members behind it get a full sync
        self._deltas[self.serial] = delta
        while len(self._deltas) > self.delta_log:
            del self._deltas[next(iter(self._deltas))]
        self.serial = serial
        self._snapshot = None
        return True

    def joined(self, member_id: int) -> None:
        """`member_id` (re)joined: find its serial and bring it up to date."""
        m = self._members.setdefault(member_id, _Member())
        m.joined, m.in_flight, m.serial = True, False, None
        m.generation += 1
        m.retry_at, m.failures, m.problem = None, 0, ""

    def left(self, member_id: int) -> None:
        """`member_id` left or was evicted: nothing goes to it until it rejoins."""
        m = self._members.get(member_id)
        if m is not None:
            m.joined, m.in_flight = False, False
            m.generation += 1

    def acknowledged(self, member_id: int, generation: int, reply: object, now: float) -> None:
        """The member answered a Push."""
        m = self._current(member_id, generation)
        if m is None:
            return
        m.in_flight = False
        if isinstance(reply, ConfigAck):
            m.serial = reply.serial
        elif isinstance(reply, ChunkAck) and m.full is not None and reply.sync_id == m.full.sync_id:
            count = len(m.full.snapshot.chunks)
            m.full.next_index = min(max(reply.next_index, 0), count)
            if m.full.next_index == count:
                m.serial = reply.serial if reply.serial == m.full.snapshot.serial else None
                m.full = None
        else:
            self.failed(member_id, generation, f"answered {type(reply).__name__}", now)
            return
        m.failures, m.problem, m.retry_at = 0, "", None

    def failed(self, member_id: int, generation: int, reason: str, now: float) -> None:
        """A Push failed (timeout, refusal, unreachable): retried after a backoff."""
        m = self._current(member_id, generation)
        if m is None:
            return
        m.in_flight = False
        if m.full is None:
            m.serial = None  # a delta may or may not have been applied: probe again
        m.failures += 1
        m.retry_at = now + min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (m.failures - 1))
        if reason != m.problem:
            self._notes.append(f"member {member_id}: configuration push failed: {reason} "
                               f"(the member holds serial {_serial_text(m.serial)}, the controller {self.serial})")
        m.problem = reason

    # ----- outputs -----------------------------------------------------------------

    def take_pushes(self, now: float) -> list[Push]:
        """What to send now: at most one request in flight per member."""
        out = []
        for member_id, m in self._members.items():
            if not m.joined or m.in_flight or (m.retry_at is not None and now < m.retry_at):
                continue
            message = self._next_message(m)
            if message is not None:
                m.in_flight = True
                out.append(Push(member_id, m.generation, message))
        return out

    def take_notes(self) -> list[str]:
        """Log lines (a push failing, an item that cannot be sent)."""
        notes, self._notes = self._notes, []
        return notes

    def next_deadline(self) -> float | None:
        times = [m.retry_at for m in self._members.values()
                 if m.joined and not m.in_flight and m.retry_at is not None]
        return min(times, default=None)

    def status(self, member_id: int) -> SyncStatus:
        m = self._members.get(member_id, _Member())
        serial = NO_SERIAL if m.serial is None else m.serial
        state, detail = SyncState.UNKNOWN, ""
        if not m.joined:
            pass
        elif m.problem:
            state, detail = SyncState.FAILED, m.problem
        elif m.full is not None:
            state = SyncState.FULL_SYNC
            detail = f"part {m.full.next_index + 1} of {len(m.full.snapshot.chunks)} (serial {m.full.snapshot.serial})"
        elif m.serial is None:
            state = SyncState.PROBING
        elif m.serial == self.serial:
            state = SyncState.IN_SYNC
        else:
            state = SyncState.SENDING
        if self.undeliverable and m.joined:
            detail = "; ".join(filter(None, (detail, self.undeliverable_text())))
        return SyncStatus(serial=serial, controller_serial=self.serial, state=state, detail=detail)

    def undeliverable_text(self) -> str:
        """What members do not get, in one line ("" when everything goes)."""
        if not self.undeliverable:
            return ""
        first = next(iter(self.undeliverable.values()))
        more = f" (and {len(self.undeliverable) - 1} more)" if len(self.undeliverable) > 1 else ""
        return f"not sent to members: {first}{more}"

    # ----- internals ------------------------------------------------------------------

    def _current(self, member_id: int, generation: int) -> _Member | None:
        m = self._members.get(member_id)
        return m if m is not None and m.joined and m.generation == generation else None

    def _next_message(self, m: _Member) -> ConfigDelta | ConfigChunk | None:
        if m.full is None and m.serial is None:
            return ConfigDelta(base_serial=self.serial, serial=self.serial, changes=[])  # probe
        if m.full is None and m.serial is not None:
            if m.serial == self.serial:
                return None
            delta = self._deltas.get(m.serial)
            if delta is not None:
                return delta
            m.full = _FullSync(sync_id=self._next_sync_id, snapshot=self._current_snapshot())
            self._next_sync_id += 1
        assert m.full is not None
        chunks = m.full.snapshot.chunks
        return ConfigChunk(sync_id=m.full.sync_id, serial=m.full.snapshot.serial, index=m.full.next_index,
                           count=len(chunks), hubs=list(chunks[m.full.next_index]))

    def _measure(self, record: HubConfig | UserConfig, item: _Item, hub_name: str) -> int | None:
        """Its size, or None (recorded in `undeliverable`) when no chunk can carry it."""
        try:
            size = size_bound(record)
            if size > self.max_item_bytes:
                raise Undeliverable(f"{size} bytes encoded, over the {self.max_item_bytes} bytes an item may have")
        except Undeliverable as exc:
            why = f"{_item_text(item, hub_name)}: {exc}"
            if self.undeliverable.get(item) != why:
                self._notes.append(f"cannot be sent to cluster members: {why}")
            self.undeliverable[item] = why
            return None
        self.undeliverable.pop(item, None)
        return size

    def _current_snapshot(self) -> _Snapshot:
        if self._snapshot is None or self._snapshot.serial != self.serial:
            self.undeliverable.clear()
            self._snapshot = _Snapshot(self.serial, tuple(self._chunks(self._hubs.values())))
        return self._snapshot

    def _chunks(self, hubs: Iterable[HubConfig]) -> Iterable[tuple[HubConfig, ...]]:
        """The hubs cut in chunks of at most chunk_bytes; a large hub continues
        in the next chunk (same settings, the next users). At least one chunk."""
        chunk: list[HubConfig] = []
        size = 0
        made = False
        for hub in hubs:
            key = hub_key(hub.name)
            settings = _settings(hub)
            need = self._measure(settings, (key, ""), hub.name)
            if need is None:
                continue  # without its hub, its users cannot go either
            if size + need > self.chunk_bytes:
                yield tuple(chunk)
                made, chunk, size = True, [], 0
            users: list[UserConfig] = []
            size += need
            for user in hub.users:
                n = self._measure(user, (key, hub_key(user.name)), hub.name)
                if n is None:
                    continue
                if size + n > self.chunk_bytes:
                    chunk.append(replace(settings, users=users))
                    yield tuple(chunk)
                    made, chunk, size, users = True, [], need, []
                users.append(user)
                size += n
            chunk.append(replace(settings, users=users))
        if chunk or not made:
            yield tuple(chunk)

    def _diff(self, old: dict[str, HubConfig], new: dict[str, HubConfig]) -> list[HubChange]:
        changes = []
        for key, hub in new.items():
            before = old.get(key)
            if before is hub or before == hub:
                continue
            change = self._hub_change(key, before, hub)
            if change is not None:
                changes.append(change)
        for key, hub in old.items():
            if key not in new:
                self._forget_items(key)
                changes.append(HubChange(hub=hub.name, deleted=True))
        return changes

    def _hub_change(self, key: str, before: HubConfig | None, hub: HubConfig) -> HubChange | None:
        if (key, "") in self.undeliverable:
            before = None  # members never got this hub: all of it, if it can go now
        settings: HubConfig | None = _settings(hub)
        if before is not None and _settings(before) == settings:
            settings = None
        elif settings is not None and self._measure(settings, (key, ""), hub.name) is None:
            return None  # the member keeps its older copy of this hub (or has none)
        old_users = {hub_key(u.name): u for u in before.users} if before is not None else {}
        put = [u for u in hub.users if old_users.get(hub_key(u.name)) != u
               and self._measure(u, (key, hub_key(u.name)), hub.name) is not None]
        names = {hub_key(u.name) for u in hub.users}
        deleted = [u.name for k, u in old_users.items() if k not in names]
        for k in old_users:
            if k not in names:
                self.undeliverable.pop((key, k), None)
        if settings is None and not put and not deleted:
            return None
        return HubChange(hub=hub.name, settings=settings, users_put=put or None, users_deleted=deleted or None)

    def _forget_items(self, key: str) -> None:
        for item in [i for i in self.undeliverable if i[0] == key]:
            del self.undeliverable[item]


def _serial_text(serial: int | None) -> str:
    return "unknown" if serial is None else str(serial)


# ----- member side --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """What a delta or a completed full sync changed on the member."""

    serial: int
    whole: bool
    """A full sync: `put` is every hub (replace them all)."""
    put: tuple[HubConfig, ...]
    """Hubs created or changed, whole."""
    deleted: tuple[str, ...]
    """Names of hubs gone."""


@dataclass(slots=True)
class _Staging:
    sync_id: int
    serial: int
    count: int
    hubs: dict[str, HubConfig]
    next_index: int = 0


class ConfigReceiver:
    """A member's copy of the cluster hubs and its serial. Any inconsistent
    input (a change to a hub it lacks) raises ValueError and resets the
    copy, so the controller's next probe finds no serial and sends it all."""

    def __init__(self) -> None:
        self.serial = NO_SERIAL
        self.hubs: dict[str, HubConfig] = {}
        self._staging: _Staging | None = None

    def reset(self) -> None:
        """Forget the serial (the copy could not be stored): the next sync is a full one."""
        self.serial = NO_SERIAL
        self._staging = None

    def delta(self, delta: ConfigDelta) -> tuple[ConfigAck, ConfigUpdate | None]:
        """Apply `delta` if this copy is at its base serial; the reply says the serial now."""
        if delta.base_serial != self.serial or self.serial == NO_SERIAL or delta.serial == delta.base_serial:
            return ConfigAck(serial=self.serial), None
        hubs = dict(self.hubs)
        put: dict[str, HubConfig] = {}
        deleted: list[str] = []
        try:
            for change in delta.changes:
                key = hub_key(change.hub)
                if change.deleted:
                    if hubs.pop(key, None) is None:
                        raise ValueError(f"hub {change.hub!r} deleted, but this member does not have it")
                    put.pop(key, None)
                    deleted.append(change.hub)
                    continue
                put[key] = hubs[key] = _changed_hub(hubs.get(key), change)
        except ValueError:
            self.reset()
            raise
        self.hubs, self.serial = hubs, delta.serial
        return ConfigAck(serial=self.serial), ConfigUpdate(serial=delta.serial, whole=False,
                                                           put=tuple(put.values()), deleted=tuple(deleted))

    def chunk(self, chunk: ConfigChunk) -> tuple[ChunkAck, ConfigUpdate | None]:
        """Take one part of a full sync; the reply names the part wanted next."""
        if chunk.count < 1 or not 0 <= chunk.index < chunk.count:
            raise ValueError(f"part {chunk.index} of {chunk.count}")
        st = self._staging
        if chunk.index == 0:
            st = self._staging = _Staging(chunk.sync_id, chunk.serial, chunk.count, {})
        elif st is None or (st.sync_id, st.serial, st.count) != (chunk.sync_id, chunk.serial, chunk.count):
            if self.serial == chunk.serial:  # all applied already; the last acknowledgement was lost
                return ChunkAck(sync_id=chunk.sync_id, next_index=chunk.count, serial=self.serial), None
            return ChunkAck(sync_id=chunk.sync_id, next_index=0, serial=self.serial), None
        if chunk.index != st.next_index:  # resend or skipped: say where to resume
            return ChunkAck(sync_id=chunk.sync_id, next_index=st.next_index, serial=self.serial), None
        for hub in chunk.hubs:
            key = hub_key(hub.name)
            before = st.hubs.get(key)
            st.hubs[key] = hub if before is None else replace(before, users=[*before.users, *hub.users])
        st.next_index += 1
        if st.next_index < st.count:
            return ChunkAck(sync_id=chunk.sync_id, next_index=st.next_index, serial=self.serial), None
        self._staging = None
        self.hubs, self.serial = st.hubs, st.serial
        return (ChunkAck(sync_id=chunk.sync_id, next_index=st.count, serial=self.serial),
                ConfigUpdate(serial=self.serial, whole=True, put=tuple(self.hubs.values()), deleted=()))


def _changed_hub(before: HubConfig | None, change: HubChange) -> HubConfig:
    if change.settings is not None:
        users = before.users if before is not None else []
        hub = replace(change.settings, users=users)
    elif before is None:
        raise ValueError(f"users of hub {change.hub!r} changed, but this member does not have it")
    else:
        hub = before
    if change.users_put or change.users_deleted:
        gone = {hub_key(n) for n in change.users_deleted or ()}
        users_by_key = {hub_key(u.name): u for u in hub.users if hub_key(u.name) not in gone}
        for user in change.users_put or ():
            users_by_key[hub_key(user.name)] = user
        hub = replace(hub, users=list(users_by_key.values()))
    return hub
