"""Sans-IO bus cores: pending requests, peer liveness, drop counters.

No clock, no socket, no await: every method that depends on time takes
``now`` (monotonic seconds), and the asyncio edge (endpoint.py) feeds inputs,
then re-arms one timer at the earliest ``next_deadline()``.

RequestTracker
    Each request gets the next id of this endpoint (1, 2, 3, ...; never
    reused while the endpoint lives) and a deadline. A reply resolves the
    pending entry only if it comes from the peer the request went to. A reply
    after the deadline is *late* (ignored, counted); a reply to an id never
    issued or issued to someone else is *unknown* (ignored, counted). Ids of
    expired requests are remembered for ``late_memory`` entries so the two
    cases can be told apart without unbounded memory.

Liveness
    Per peer: when we last heard anything from it and when we last sent
    anything to it. A peer we have sent nothing to for ``heartbeat_interval_s``
    is due a heartbeat (so a quiet link still carries traffic both ways). A
    peer silent for ``silence_timeout_s`` (default 3 s, as DESIGN.md's member
    liveness) is reported once as :class:`PeerSilent` and forgotten; if it
    speaks again it is reported as :class:`PeerSeen` like a new peer. So the
    table only holds live peers, whatever strangers connect. A *watched* peer
    (a member's controller) is never forgotten: it keeps being heartbeated
    while silent, so the link comes back by itself when the controller does.
    A closed connection need not wait for silence: the edge reports that some
    connection closed (libzmq names no peer), every live peer is then due a
    heartbeat at once and again after PROBE_DELAYS_S (libzmq drops the route
    a few ms after its event), and a peer the edge finds no route for is
    reported as :class:`PeerGone` and forgotten like a silent one.

DropCounter
    Counts dropped frames per (peer, reason); says "log this" only the first
    time a pair is seen, and for at most ``max_logged`` pairs in all, so
    neither a peer spamming garbage nor one making a fresh key per frame
    (any key passes ZAP in "any key" mode) can flood the log.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSeen:
    """A peer sent its first valid message (or its first after going silent)."""

    peer: str
    """z85 CURVE public key of the peer."""


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSilent:
    """A peer has sent nothing for the silence timeout; it is forgotten."""

    peer: str
    """z85 CURVE public key of the peer."""
    silent_for_s: float
    """Seconds since we last heard from it."""


@dataclasses.dataclass(frozen=True, slots=True)
class PeerGone:
    """A peer's connection is gone (a send found no route to it); it is
    forgotten as a silent one is, without waiting for the silence timeout."""

    peer: str
    """z85 CURVE public key of the peer."""
    silent_for_s: float
    """Seconds since we last heard from it."""


@dataclasses.dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """Send a heartbeat to ``peer`` now (nothing sent to it for an interval)."""

    peer: str


@dataclasses.dataclass(frozen=True, slots=True)
class Pending:
    """One outstanding request."""

    id: int
    peer: str
    deadline: float
    waiter: Any = None
    """Opaque to the core; the edge keeps its future here."""


class RequestTracker:
    """Pending request ids and their deadlines (see module doc)."""

    def __init__(self, default_timeout_s: float = 5.0, late_memory: int = 4096) -> None:
        if default_timeout_s <= 0:
            raise ValueError("default_timeout_s must be > 0")
        self.default_timeout_s = default_timeout_s
        self._late_memory = late_memory
        self._last_id = 0
        self._pending: dict[int, Pending] = {}
        self._deadlines: list[tuple[float, int]] = []  # heap; stale entries skipped
        self._expired: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.timeouts = 0
        self.late_replies = 0
        self.unknown_replies = 0

    def next_id(self) -> int:
        """A fresh envelope id (for requests and notifications alike)."""
        self._last_id += 1
        return self._last_id

    def start(self, peer: str, now: float, timeout_s: float | None = None,
              waiter: Any = None) -> Pending:
        """Register a request to ``peer``; returns it with its new id."""
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        if timeout <= 0:
            raise ValueError("timeout_s must be > 0")
        pending = Pending(id=self.next_id(), peer=peer, deadline=now + timeout, waiter=waiter)
        self._pending[pending.id] = pending
        heapq.heappush(self._deadlines, (pending.deadline, pending.id))
        return pending

    def resolve(self, reply_to: int, peer: str) -> Pending | None:
        """A reply arrived; the matching pending request, or None if ignored."""
        pending = self._pending.get(reply_to)
        if pending is not None and pending.peer == peer:
            del self._pending[reply_to]
            return pending
        if pending is None and reply_to in self._expired:
            self.late_replies += 1
        else:
            self.unknown_replies += 1
        return None

    def cancel(self, request_id: int) -> Pending | None:
        """Forget a request without counting a timeout (e.g. the caller gave up)."""
        return self._pending.pop(request_id, None)

    def handle_timer(self, now: float) -> list[Pending]:
        """Requests whose deadline is <= now; they are no longer pending."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, request_id = heapq.heappop(self._deadlines)
            pending = self._pending.pop(request_id, None)
            if pending is None:
                continue  # already answered or cancelled
            expired.append(pending)
            self.timeouts += 1
            self._expired[request_id] = None
            if len(self._expired) > self._late_memory:
                self._expired.popitem(last=False)
        return expired

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self._pending:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def pending(self) -> list[Pending]:
        return list(self._pending.values())


# After a connection closes, live peers are probed at once and after these
# delays: libzmq reports the close before it drops the peer's route (1-2 ms
# here), so the first probe may still find it.
PROBE_DELAYS_S = (0.05, 0.5)
# Probes closer together than this are one probe (a burst of closing
# strangers costs each peer one heartbeat per interval, not one per close).
PROBE_MIN_GAP_S = 0.025


class Liveness:
    """Heartbeat schedule and silence detection per peer (see module doc)."""

    def __init__(self, heartbeat_interval_s: float = 1.0, silence_timeout_s: float = 3.0) -> None:
        if not 0 < heartbeat_interval_s < silence_timeout_s:
            raise ValueError("need 0 < heartbeat_interval_s < silence_timeout_s")
        self.heartbeat_interval_s = heartbeat_interval_s
        self.silence_timeout_s = silence_timeout_s
        self._heard: dict[str, float] = {}
        self._sent: dict[str, float] = {}
        self._sticky: set[str] = set()
        self._down: set[str] = set()
        self._probes: list[float] = []  # sorted times at which every live peer is due a heartbeat

    @property
    def peers(self) -> frozenset[str]:
        """Peers currently heard from within the timeout."""
        return frozenset(p for p in self._heard if p not in self._down)

    def watch(self, peer: str, now: float) -> None:
        """Track ``peer`` for good (a member's controller): it is heartbeated
        even while silent, never forgotten; PeerSeen on its first message and
        on each return, PeerSilent once per silence."""
        self._sticky.add(peer)
        self._down.add(peer)
        self._heard.setdefault(peer, now)
        self._sent.setdefault(peer, now - self.heartbeat_interval_s)

    def heard_from(self, peer: str, now: float) -> list[PeerSeen]:
        """A valid message from ``peer`` arrived."""
        new = peer not in self._heard or peer in self._down
        self._heard[peer] = now
        self._down.discard(peer)
        if new:
            # Heartbeat due at once: a new peer learns at once that we are here.
            self._sent[peer] = now - self.heartbeat_interval_s
            return [PeerSeen(peer)]
        return []

    def sent_to(self, peer: str, now: float) -> None:
        """Anything was sent to ``peer``; postpones its heartbeat."""
        if peer in self._sent:
            self._sent[peer] = now

    def connection_closed(self, now: float) -> None:
        """Some connection closed: probe every live peer now and after PROBE_DELAYS_S."""
        for t in (now, *(now + d for d in PROBE_DELAYS_S)):
            if all(abs(t - p) >= PROBE_MIN_GAP_S for p in self._probes):
                self._probes.append(t)
        self._probes.sort()

    def unreachable(self, peer: str, now: float) -> list[PeerGone]:
        """The edge found no route to ``peer``: its connection is gone."""
        heard = self._heard.get(peer)
        if heard is None or peer in self._down:
            return []
        self._lost(peer)
        return [PeerGone(peer, now - heard)]

    def forget(self, peer: str) -> None:
        self._heard.pop(peer, None)
        self._sent.pop(peer, None)
        self._sticky.discard(peer)
        self._down.discard(peer)

    def _lost(self, peer: str) -> None:
        """A watched peer stays, marked down (still heartbeated); others are forgotten."""
        if peer in self._sticky:
            self._down.add(peer)
        else:
            self.forget(peer)

    def silent_for(self, peer: str, now: float) -> float | None:
        heard = self._heard.get(peer)
        return None if heard is None else now - heard

    def handle_timer(self, now: float) -> list[PeerSilent | HeartbeatDue]:
        """Silent peers and heartbeats due, in that order. A heartbeat is
        reported once per interval whether or not the edge manages to send it."""
        events: list[PeerSilent | HeartbeatDue] = []
        for peer, heard in list(self._heard.items()):
            if peer not in self._down and now - heard >= self.silence_timeout_s:
                self._lost(peer)
                events.append(PeerSilent(peer, now - heard))
        probe = bool(self._probes) and self._probes[0] <= now
        while self._probes and self._probes[0] <= now:
            self._probes.pop(0)
        for peer, sent in self._sent.items():
            if now - sent >= self.heartbeat_interval_s or (probe and peer not in self._down):
                self._sent[peer] = now
                events.append(HeartbeatDue(peer))
        return events

    def next_deadline(self) -> float | None:
        times = [h + self.silence_timeout_s for p, h in self._heard.items()
                 if p not in self._down]
        times += [s + self.heartbeat_interval_s for s in self._sent.values()]
        times += self._probes[:1]
        return min(times, default=None)


class DropCounter:
    """Dropped frames per (peer, reason), with log-once and bounded size."""

    def __init__(self, max_pairs: int = 4096, max_logged: int = 64) -> None:
        self._max_pairs = max_pairs
        self._max_logged = max_logged
        self._logged = 0
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def add(self, peer: str, reason: str) -> bool:
        """Count one drop; True if this (peer, reason) is new and the log budget allows (log it)."""
        key = (peer, reason)
        if key not in self.counts and len(self.counts) >= self._max_pairs:
            key = ("*", reason)  # a key-churning peer cannot grow us without bound
        new = key not in self.counts
        self.counts[key] += 1
        if new and self._logged < self._max_logged:
            self._logged += 1
            return True
        return False

    def total(self, reason: str | None = None) -> int:
        return sum(n for (_, r), n in self.counts.items() if reason is None or r == reason)
