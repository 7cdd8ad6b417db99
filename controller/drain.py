"""Graceful drain: a member takes no new sessions and its sessions move away
at a bounded rate, for maintenance (SoftEther has nothing like it).

Theory of operation. The operator's drain orders are configuration
(`DrainOrder`: the member's bus key and a rate in sessions per second), so
they survive a controller restart and a member restart: a member's key is
its identity on the bus, stable across both (its id is per controller
process). `Drains` is the sans-IO book of what each order has done; the
controller core owns it and turns its outputs into bus requests:

- a draining member is unavailable to selection (`skip`): no new session,
  no new dynamic hub instance. A dynamic hub already running there is
  started elsewhere by its next login and the old instance is then stopped
  as a duplicate (placement's rule: one instance per dynamic hub), so a
  dynamic hub moves whole, its sessions together;
- after each status report of a draining member (`status_reported`), a hub
  whose reported sessions exceed the local bridges seen there (bridges stay:
  they are not clients) is listed (`EnumSessions`) when nothing of that
  drain is in flight and its last listing is at least RELIST_S old;
- the listed VPN sessions are disconnected one by one (`DeleteSession`), at
  most `rate` per second (`due`, with `next_deadline` for the timer). The
  client reconnects through the controller, which places it elsewhere;
- a drain whose member reports no session left but its bridges and no
  outstanding ticket is DRAINED (and DRAINING again should one appear). An
  order that is withdrawn (undrain) ends at once; sessions already moved
  stay where they are.

A session asked to disconnect is not asked again for ASKED_MEMORY_S: its
close takes a moment and a relisting in between still shows it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Final

from controller import messages as msg

DEFAULT_RATE: Final = 5.0
"""Sessions per second moved off a draining member when the order names none."""
MAX_RATE: Final = 1000.0
RELIST_S: Final = 1.0
"""How often a hub still holding sessions is listed again."""
ASKED_MEMORY_S: Final = 10.0
MAX_QUEUE: Final = 100_000
"""Sessions queued per drain at most (a listing beyond it is cut)."""
SKIP_DRAINING: Final = "draining"


class DrainState(enum.Enum):
    DRAINING = "draining"
    DRAINED = "drained"


@dataclass(frozen=True, slots=True)
class DrainOrder:
    """The operator's order: drain the member with bus key `key`."""

    key: bytes
    rate: float = DEFAULT_RATE
    """Sessions moved per second at most."""


@dataclass(frozen=True, slots=True)
class ListSessions:
    """Ask member `key` for the sessions of `hub`; report with `listed` or `list_failed`."""

    key: bytes
    hub: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Ask member `key` to disconnect session `name` of `hub`; report with `disconnected`."""

    key: bytes
    hub: str
    name: str


@dataclass(slots=True)
class _Drain:
    rate: float
    state: DrainState = DrainState.DRAINING
    queue: deque[tuple[str, str]] = field(default_factory=deque)
    listing: set[str] = field(default_factory=set)
    """Hubs whose EnumSessions is in flight."""
    listed_at: dict[str, float] = field(default_factory=dict)
    bridges: dict[str, int] = field(default_factory=dict)
    """Hub (lower case) → local bridge sessions in its last listing."""
    asked: dict[str, float] = field(default_factory=dict)
    """Session name (lower case) → when it was asked to disconnect."""
    disconnecting: int = 0
    next_move_at: float = 0.0
    moved: int = 0


@dataclass(frozen=True, slots=True)
class DrainView:
    """What the member list shows of a drain."""

    state: DrainState
    rate: float
    moved: int
    """Sessions asked to move since the order (or the controller's start)."""


class Drains:
    """Every drain order and its progress. `now` is monotonic seconds, always passed in."""

    def __init__(self) -> None:
        self._drains: dict[bytes, _Drain] = {}

    # ----- orders --------------------------------------------------------------

    def configure(self, orders: Iterable[DrainOrder], now: float) -> tuple[list[bytes], list[bytes]]:
        """The orders now in force; returns (keys newly draining, keys undrained)."""
        wanted = {o.key: o for o in orders}
        ended = [key for key in self._drains if key not in wanted]
        for key in ended:
            del self._drains[key]
        started = []
        for key, order in wanted.items():
            rate = min(max(order.rate, 0.001), MAX_RATE)
            d = self._drains.get(key)
            if d is None:
                self._drains[key] = _Drain(rate=rate, next_move_at=now)
                started.append(key)
            else:
                d.rate = rate
        return started, ended

    def view(self, key: bytes) -> DrainView | None:
        d = self._drains.get(key)
        return None if d is None else DrainView(state=d.state, rate=d.rate, moved=d.moved)

    def skip(self, ids_by_key: Mapping[bytes, int]) -> dict[int, str]:
        """Server id → why selection skips it, for every draining member known."""
        return {ids_by_key[key]: SKIP_DRAINING for key in self._drains if key in ids_by_key}

    # ----- member inputs ----------------------------------------------------------

    def status_reported(self, key: bytes, hub_sessions: Mapping[str, tuple[str, int]], tickets_outstanding: int,
                        now: float) -> tuple[list[ListSessions], DrainState | None]:
        """Member `key` reported `hub_sessions` (hub key → (hub name, sessions))
        and its unredeemed tickets. Returns the listings to make and the new
        state when it changed."""
        d = self._drains.get(key)
        if d is None:
            return [], None
        busy = {hk: name for hk, (name, n) in hub_sessions.items() if n > d.bridges.get(hk, 0)}
        was = d.state
        d.state = DrainState.DRAINING if busy or tickets_outstanding else DrainState.DRAINED
        lists: list[ListSessions] = []
        if not d.queue and not d.listing and not d.disconnecting:
            for hk, name in busy.items():
                if now >= d.listed_at.get(hk, now - RELIST_S) + RELIST_S:
                    d.listing.add(hk)
                    d.listed_at[hk] = now
                    lists.append(ListSessions(key, name))
        return lists, (d.state if d.state is not was else None)

    def listed(self, key: bytes, hub: str, sessions: list[msg.SessionRow], now: float) -> None:
        """The sessions of `hub` on member `key`: queue the VPN sessions to move."""
        d = self._drains.get(key)
        if d is None:
            return
        hk = hub.lower()
        d.listing.discard(hk)
        d.bridges[hk] = sum(1 for s in sessions if s.bridge)
        self._forget_asked(d, now)
        queued = {name.lower() for _, name in d.queue}
        for s in sessions:
            name = s.name.lower()
            if not s.bridge and name not in d.asked and name not in queued and len(d.queue) < MAX_QUEUE:
                d.queue.append((hub, s.name))
                queued.add(name)

    def list_failed(self, key: bytes, hub: str) -> None:
        d = self._drains.get(key)
        if d is not None:
            d.listing.discard(hub.lower())

    def disconnected(self, key: bytes) -> None:
        """A Disconnect of member `key` was answered (done, or the session was already gone)."""
        d = self._drains.get(key)
        if d is not None and d.disconnecting:
            d.disconnecting -= 1

    def member_away(self, key: bytes) -> None:
        """Member `key` was evicted or left: what it listed is gone with it
        (its drain order stays for when it is back)."""
        d = self._drains.get(key)
        if d is not None:
            d.queue.clear()
            d.listing.clear()
            d.bridges.clear()
            d.listed_at.clear()
            d.disconnecting = 0
            d.state = DrainState.DRAINING

    # ----- time -------------------------------------------------------------------

    def due(self, now: float, live: Set[bytes]) -> list[Disconnect]:
        """The disconnects whose turn has come (at most `rate` per second per
        drain), to members in `live` (joined); a drain whose member is not
        there forgets what it listed (`member_away`)."""
        out = []
        for key, d in self._drains.items():
            if d.queue and key not in live:
                self.member_away(key)
            elif d.queue and now >= d.next_move_at:
                hub, name = d.queue.popleft()
                d.asked[name.lower()] = now
                d.disconnecting += 1
                d.moved += 1
                d.next_move_at = now + 1.0 / d.rate  # consecutive moves 1/rate apart at least
                out.append(Disconnect(key, hub, name))
        return out

    def next_deadline(self) -> float | None:
        times = [d.next_move_at for d in self._drains.values() if d.queue]
        return min(times) if times else None

    @staticmethod
    def _forget_asked(d: _Drain, now: float) -> None:
        for name, at in list(d.asked.items()):
            if now >= at + ASKED_MEMORY_S:
                del d.asked[name]
