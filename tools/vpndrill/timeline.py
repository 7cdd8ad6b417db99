"""What happened during a drill, and the report made from it (sans-IO).

A driver (tools/vpndrill/drill.py running a scenario, tools/vpndrill/observe.py
watching a cluster) feeds a `Timeline` with samples, all times in seconds
since the drill began (the driver's monotonic clock minus its origin):

  members(now, listed)      the servers the controller's member list shows
  sessions(now, where)      session key -> the server holding it, None while down
  counts(now, per_server)   sessions per server (observe: the member list's own counts)
  event(now, action, target)   a fault or recovery applied (or, observing, seen)
  probe(client, sent_at, answered)   one ping a client sent, and whether it came back

`report()` turns them into one `EventReport` per event. For an event at
time T on server S, until the next event ("its window"), or for what its
sessions do until the next fault ("its fault window": a fault's sessions
may leave only after its recovery, e.g. when a link came back after the
clients' keepalive gave up, and must not be blamed on a later fault):

  detection_s   T -> the first member list without S (the controller noticed)
  eviction_s    T -> the first sample with no session on S any more (fault window)
  listed_s      (start, cont, restart, ...) T -> the first member list with S
                again (after it was out, for a restart)
  gaps          per session that was on S at T and left it in the fault window: from T (kill,
                stop, restart, link down, partition) or else from its last
                sample connected on S, to its first sample connected again
                (anywhere, up to the end of the drill); resolution: one sample
  lost          those sessions that never came back
  traffic_lost  pings sent in the window that got no answer (all clients)

Nothing here reads a clock or does I/O; the resolution of every figure is
the driver's sampling interval.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

FAULTS = frozenset({"kill", "stop", "restart", "link_down", "partition", "drain", "left"})
"""Actions after which the target's sessions are expected to move (the rest recover)."""
OUT_OF_LIST = frozenset({"kill", "stop", "restart", "link_down", "partition", "left"})
"""Faults after which the controller should drop the target from its member list."""
HARD_FAULTS = OUT_OF_LIST - {"left"}
"""Faults that break the target's sessions at once: their gap runs from the
fault itself, however late a client notices (a frozen server's TCP stays
open until the client's keepalive gives up). After a drain, or a member seen
leaving by an observer, it runs from the session's last sample on the target."""
BACK_IN_LIST = frozenset({"start", "cont", "restart", "link_up", "heal", "joined"})
"""Actions after which the target should be listed again."""


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    action: str
    target: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventReport:
    at: float
    action: str
    target: str
    detection_s: float | None
    """Event -> first member list without the target (None: it stayed listed)."""
    eviction_s: float | None
    """Event -> first sample with none of its sessions left on the target."""
    listed_s: float | None
    """Recovery event -> first member list with the target again."""
    affected: int
    """Sessions on the target at the event."""
    gaps_s: tuple[float, ...]
    """Takeover gap of each affected session that came back."""
    lost: int
    """Affected sessions never connected again."""
    traffic_lost: int
    """Pings sent in the event's window without an answer."""
    traffic_sent: int

    @property
    def gap_median_s(self) -> float | None:
        return percentile(self.gaps_s, 50)

    @property
    def gap_p95_s(self) -> float | None:
        return percentile(self.gaps_s, 95)

    @property
    def gap_max_s(self) -> float | None:
        return max(self.gaps_s) if self.gaps_s else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    duration_s: float
    events: tuple[EventReport, ...]
    sessions: int
    """Distinct sessions seen."""
    connected_at_end: int
    back: int
    """Sessions displaced by an event that came back."""
    lost: int
    """Sessions displaced by an event that never came back."""
    gaps: dict[str, tuple[tuple[float, float], ...]]
    """Per session, each (down from, up again) interval: for the plot."""
    counts: tuple[tuple[float, dict[str, int]], ...]
    """Sessions per server over time: for the plot."""
    timeline: tuple[Event, ...]


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def percentile(values: tuple[float, ...] | list[float], pct: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Timeline:
    _members: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    _sessions: list[tuple[float, dict[str, str | None]]] = field(default_factory=list)
    _counts: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _events: list[Event] = field(default_factory=list)
    _probes: list[tuple[float, bool]] = field(default_factory=list)
    _moves: list[Move] = field(default_factory=list)
    _outages: list[tuple[str, tuple[float, float]]] = field(default_factory=list)
    _end: float = 0.0

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    def _seen(self, now: float) -> None:
        self._end = max(self._end, now)

    def members(self, now: float, listed: set[str] | frozenset[str]) -> None:
        self._seen(now)
        self._members.append((now, frozenset(listed)))

    def sessions(self, now: float, where: Mapping[str, str | None]) -> None:
        """Samples must come in time order (one sampler)."""
        self._seen(now)
        self._sessions.append((now, dict(where)))

    def counts(self, now: float, per_server: Mapping[str, int]) -> None:
        self._seen(now)
        self._counts.append((now, dict(per_server)))

    def event(self, now: float, action: str, target: str, note: str = "") -> Event:
        self._seen(now)
        e = Event(now, action, target, note)
        self._events.append(e)
        self._events.sort(key=lambda x: x.at)  # an action timed at its start may be fed after a later sample
        return e

    def probe(self, sent_at: float, answered: bool) -> None:
        """A ping sent at `sent_at` (any order: probes are fed after the fact)."""
        self._probes.append((sent_at, answered))

    def moves(self, moves: list[Move]) -> None:
        """Observed reconnects and disappearances (resolve_sessions), used
        for "left" events, whose sessions cannot be told apart by server."""
        self._moves += moves

    def end(self, now: float) -> None:
        self._seen(now)

    # ---- the report ------------------------------------------------------------------------

    def report(self) -> Report:
        self._outages = []
        reports = []
        displaced: dict[str, bool] = {}  # session -> came back (over every event)
        claimed: set[Move] = set()  # each observed move is reported by one event only
        for i, e in enumerate(self._events):
            until = self._events[i + 1].at if i + 1 < len(self._events) else self._end
            next_fault = next((x.at for x in self._events[i + 1:] if x.action in FAULTS), self._end)
            if e.action == "left":  # its clients may be back before the controller drops it
                since = self._events[i - 1].at if i else 0.0
                r = self._observed_report(e, since, until, claimed)
            elif e.action in ("draining", "drained"):  # its sessions move from then until it is undrained
                until = next((x.at for x in self._events[i + 1:] if x.action != "drained"), self._end)
                r = self._observed_report(e, e.at, until, claimed)
            else:
                r = self._event_report(e, until, next_fault)
            reports.append(r[0])
            for key, came_back in r[1].items():
                displaced[key] = displaced.get(key, True) and came_back
        last = self._sessions[-1][1] if self._sessions else {}
        keys = {k for _, where in self._sessions for k in where}
        return Report(duration_s=self._end, events=tuple(reports), sessions=len(keys),
                      connected_at_end=sum(v is not None for v in last.values()),
                      back=sum(displaced.values()), lost=sum(not v for v in displaced.values()),
                      gaps=self._down_intervals(self._outages), counts=tuple(self._server_counts()),
                      timeline=tuple(self._events))

    def _observed_report(self, e: Event, since: float, until: float, claimed: set[Move]
                         ) -> tuple[EventReport, dict[str, bool]]:
        """A member seen leaving or draining: its session count before, and
        the reconnects and disappearances seen in [since, until) that no
        earlier event took (sessions cannot be told apart by server when the
        members share a host name); a member leaving is detected from the
        first of those (the first sign of the fault an observer sees) to its
        leaving the list. A move seen in the same sample as the next event is
        that event's: the observer reads the sessions before the member list."""
        before = [c for t, c in self._counts if t <= e.at and e.target in c]
        affected = before[-1][e.target] if before else 0
        last = until >= self._end  # the last window keeps what is seen at the very end
        moves = [m for m in self._moves if m not in claimed
                 and since <= _seen_at(m) and (_seen_at(m) < until or last and _seen_at(m) == until)]
        claimed.update(moves)
        came_back = {m.key: m.up_at is not None for m in moves}
        after = [t - e.at for t, c in self._counts if e.at <= t <= until and c.get(e.target, 0) == 0]
        first_sign = min((m.down_at for m in moves), default=e.at)
        detection = max(0.0, e.at - first_sign) if e.action == "left" else None
        return EventReport(at=e.at, action=e.action, target=e.target, detection_s=detection,
                           eviction_s=after[0] if after else None, listed_s=None, affected=affected,
                           gaps_s=tuple(max(0.0, m.up_at - m.down_at) for m in moves if m.up_at is not None),
                           lost=sum(not v for v in came_back.values()), traffic_lost=0, traffic_sent=0), came_back

    def _event_report(self, e: Event, until: float, next_fault: float) -> tuple[EventReport, dict[str, bool]]:
        out = [t for t, listed in self._members if e.at <= t <= until and e.target not in listed]
        detection = out[0] - e.at if out and e.action in OUT_OF_LIST else None
        listed_s = None
        if e.action in BACK_IN_LIST:
            since = out[0] if e.action == "restart" and out else e.at
            listed_s = next((t - e.at for t, listed in self._members
                             if since <= t <= until and e.target in listed), None)
        before = self._where_at(e.at)
        affected = sorted(k for k, s in before.items() if s == e.target) if e.action in FAULTS else []
        eviction = None
        if affected:
            eviction = next((t - e.at for t, where in self._sessions
                             if e.at <= t <= next_fault and e.target not in where.values()), None)
        gaps: list[float] = []
        came_back: dict[str, bool] = {}
        for key in affected:
            gap = self._takeover_gap(key, e, next_fault)
            if gap is False:
                continue  # did not leave the target in time (e.g. a freeze shorter than the keepalive)
            came_back[key] = gap is not None
            if isinstance(gap, tuple):
                gaps.append(gap[1] - gap[0])
                self._outages.append((key, gap))
        window = [answered for t, answered in self._probes if e.at <= t < until]
        return EventReport(at=e.at, action=e.action, target=e.target, detection_s=detection,
                           eviction_s=eviction, listed_s=listed_s, affected=len(affected), gaps_s=tuple(gaps),
                           lost=sum(not v for v in came_back.values()),
                           traffic_lost=sum(not a for a in window), traffic_sent=len(window)), came_back

    def _where_at(self, t: float) -> dict[str, str | None]:
        """The last session sample at or before `t` (empty before the first)."""
        i = bisect_right([s[0] for s in self._sessions], t)
        return self._sessions[i - 1][1] if i else {}

    def _takeover_gap(self, key: str, e: Event, leave_by: float) -> tuple[float, float] | None | bool:
        """(fault or last sample on the target, first sample connected after
        leaving it); None: left and never came back; False: did not leave it by `leave_by`."""
        last_on = e.at
        hard = e.action in HARD_FAULTS
        left = False
        for t, where in self._sessions:
            if t < e.at:
                continue
            server = where.get(key)
            if not left:
                if t > leave_by:
                    return False
                if server == e.target:
                    last_on = e.at if hard else t
                    continue
                left = True
                if server is not None:  # moved between two samples
                    return (last_on, t)
                continue
            if server is not None:
                return (last_on, t)
        return None if left else False

    def _down_intervals(self, outages: list[tuple[str, tuple[float, float]]]
                        ) -> dict[str, tuple[tuple[float, float], ...]]:
        """Per session, the intervals it was down: seen down by its client,
        or taken over after a hard fault (from the fault), overlaps merged."""
        out: dict[str, list[tuple[float, float]]] = {}
        up_at: dict[str, float] = {}  # last sample seen connected
        down: dict[str, float] = {}  # last connected sample before a down run
        for t, where in self._sessions:
            for key, server in where.items():
                out.setdefault(key, [])
                if server is None:
                    if key in up_at and key not in down:
                        down[key] = up_at[key]
                else:
                    if key in down:
                        out[key].append((down.pop(key), t))
                    up_at[key] = t
        for key, since in down.items():
            out[key].append((since, self._end))
        for key, interval in outages:
            out.setdefault(key, []).append(interval)
        return {k: tuple(_merged(v)) for k, v in out.items()}

    def _server_counts(self) -> list[tuple[float, dict[str, int]]]:
        if self._counts:
            return list(self._counts)
        return [(t, dict(Counter(s for s in where.values() if s is not None))) for t, where in self._sessions]


def _seen_at(m: Move) -> float:
    """When a move is seen: its session back, or gone for good."""
    return m.up_at if m.up_at is not None else m.down_at


@dataclass(frozen=True, slots=True)
class Move:
    """An observed session that went away (down_at: its last sample) and
    came back under a new name (up_at: its first sample; None: never)."""
    key: str
    down_at: float
    up_at: float | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One row of a controller's session list (EnumSession), as observe sees it."""
    name: str
    user: str
    address: str
    """The client's IP address."""
    server: str


def resolve_sessions(samples: list[tuple[float, list[SessionRow]]]
                     ) -> tuple[list[tuple[float, dict[str, str | None]]], list[Move]]:
    """Observing a cluster, a session that comes back elsewhere has a new
    session name: give each client a stable key over the whole recording.

    Per identity (user, client address), names are taken in order of first
    appearance; a new name continues the chain of an older name of the same
    identity that vanishes before it does (already gone: it came back;
    still listed: the controller lists the dead server's session until it
    drops that member, while the client is already back), the one that
    vanished first; else it starts a chain. A chain's key is "user@address#n";
    its server is that of its newest listed name, None between names.
    Also returns each chain's moves: name to next name, and a last name
    that vanished before the end."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    ident: dict[str, tuple[str, str]] = {}
    for i, (_, rows) in enumerate(samples):
        for r in rows:
            first.setdefault(r.name, i)
            last[r.name] = i
            ident[r.name] = (r.user, r.address)
    final = len(samples) - 1
    chains: dict[tuple[str, str], list[list[str]]] = {}
    for name in sorted(first, key=lambda n: (first[n], n)):
        own = chains.setdefault(ident[name], [])
        open_ = [c for c in own if first[c[-1]] < first[name] and last[c[-1]] < final
                 and last[c[-1]] < last[name]]
        if open_:
            min(open_, key=lambda c: last[c[-1]]).append(name)
        else:
            own.append([name])
    key_of: dict[str, str] = {}
    moves: list[Move] = []
    for (user, address), cs in chains.items():
        for n, chain in enumerate(cs, 1):
            key = f"{user}@{address}#{n}"
            for name in chain:
                key_of[name] = key
            for old, new in zip(chain, chain[1:]):
                moves.append(Move(key, samples[last[old]][0], samples[first[new]][0]))
            if last[chain[-1]] < final:
                moves.append(Move(key, samples[last[chain[-1]]][0], None))
    out: list[tuple[float, dict[str, str | None]]] = []
    seen: set[str] = set()
    for t, rows in samples:
        where: dict[str, str | None] = {k: None for k in seen}
        newest: dict[str, int] = {}
        for r in rows:
            key = key_of[r.name]
            if key not in newest or first[r.name] >= newest[key]:
                newest[key] = first[r.name]
                where[key] = r.server
        seen.update(newest)
        out.append((t, where))
    return out, moves
