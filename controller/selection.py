"""Member selection: which server takes the next session.

Algorithm (manual 3.9.4, SoftEther Server.c `SiGetNextFarmMember`): walk the
candidates in list order (the controller first, then members in join
order); skip the controller when "controller functions only" is set; skip
servers that may not take sessions (not online, evicted, suspect, draining)
and servers whose sessions have reached their limit; among the rest the
highest points win and a tie goes to the LATER entry (SoftEther compares
with `>=`). A policy returns a `SelectionDecision`: the chosen server, the
points of every candidate and why each was skipped, for logs and vpnctl.

Fresh load (our addition, see DESIGN.md "Cluster behaviour"): SoftEther
refreshes a member's points from the `createticket` reply and every 10 s
poll, so a burst of connects between two reports lands on one member.
Here a `FreshLoad` book counts the sessions just redirected to each member
(ticket created, not yet in a status report) and selection scores a member
by `points(reported + pending, weight, M)`. A pending entry ends when the
member's next status report arrives (the member counts unredeemed tickets
in its reported load, so nothing falls through the gap) or after the
ticket lifetime (60 s), whichever comes first. With weights 100/100/200 a
burst of 300 connects is then split 75/75/150.

Invariants: the decision lists every candidate exactly once, in input
order; `chosen` is None only inside a NoEligibleServer error; the default
policy picks the same server as SoftEther would for the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.errors import NoEligibleServer
from controller.points import DEFAULT_MAX_SESSIONS, points

TICKET_LIFETIME_S = 60.0

# Skip reasons shown to operators; stable strings (vpnctl prints them).
SKIP_CONTROLLER_ONLY = "controller functions only"
SKIP_FULL = "session limit reached"


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One server as the selection sees it."""

    server_id: int
    """Registry id of the server (the controller's own entry included)."""
    sessions: int
    """Load in its last status report (sessions plus its unredeemed tickets)."""
    pending: int = 0
    """Sessions redirected to it since that report (fresh load)."""
    weight: int = 100
    """Performance standard ratio; 0 means 100."""
    max_sessions: int = 0
    """Its session limit; 0 means `points_max_sessions`."""
    points_max_sessions: int = DEFAULT_MAX_SESSIONS
    """M in the points formula."""
    is_controller: bool = False
    """True for the controller's own entry (SoftEther's `Me`)."""
    unavailable: str | None = None
    """Why the registry will not give it sessions (e.g. "evicted"), or None."""

    @property
    def load(self) -> int:
        return self.sessions + self.pending

    @property
    def points(self) -> int:
        return points(self.load, self.weight, self.points_max_sessions)


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateView:
    """One line of a decision record."""

    server_id: int
    points: int
    """Points the policy used (with fresh load)."""
    sessions: int
    pending: int
    skipped: str | None
    """Why it was not considered, or None if it competed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectionDecision:
    """Why a server was chosen; logged and shown by vpnctl."""

    chosen: int | None
    """Registry id of the chosen server; None when nothing was eligible."""
    candidates: tuple[CandidateView, ...]
    reason: str
    policy: str


class SelectionPolicy(Protocol):
    """A pluggable way to choose a server. Implementations must be pure."""

    name: str

    def choose(self, candidates: Sequence[Candidate], *, controller_only: bool) -> SelectionDecision:
        """Return a decision naming one eligible candidate.

        Raises NoEligibleServer (with the decision attached) when none is.
        """
        ...


def assess(candidates: Sequence[Candidate], *, controller_only: bool) -> list[CandidateView]:
    """The eligibility rules every policy shares, one view per candidate."""
    views = []
    for c in candidates:
        limit = c.max_sessions or c.points_max_sessions
        if c.is_controller and controller_only:
            skipped: str | None = SKIP_CONTROLLER_ONLY
        elif c.unavailable is not None:
            skipped = c.unavailable
        elif c.load >= limit:
            skipped = SKIP_FULL
        else:
            skipped = None
        views.append(
            CandidateView(
                server_id=c.server_id, points=c.points, sessions=c.sessions, pending=c.pending, skipped=skipped
            )
        )
    return views


class HighestPoints:
    """SoftEther's rule: most points win, ties go to the later entry."""

    name = "highest-points"

    def choose(self, candidates: Sequence[Candidate], *, controller_only: bool) -> SelectionDecision:
        views = assess(candidates, controller_only=controller_only)
        best: CandidateView | None = None
        for v in views:
            if v.skipped is None and (best is None or v.points >= best.points):
                best = v
        if best is None:
            decision = SelectionDecision(
                chosen=None, candidates=tuple(views), reason="no eligible server", policy=self.name
            )
            raise NoEligibleServer(_explain(views), decision)
        rivals = sum(1 for v in views if v.skipped is None)
        reason = f"highest points {best.points} of {rivals} eligible"
        if sum(1 for v in views if v.skipped is None and v.points == best.points) > 1:
            reason += " (tie: later entry wins)"
        return SelectionDecision(chosen=best.server_id, candidates=tuple(views), reason=reason, policy=self.name)


def _explain(views: Sequence[CandidateView]) -> str:
    if not views:
        return "no server in the cluster"
    return "no eligible server: " + ", ".join(f"{v.server_id}: {v.skipped}" for v in views)


class FreshLoad:
    """Sessions redirected to each server and not yet in its status report.

    `now` is monotonic seconds, always passed in. Entries end at the
    server's next status report (`status_reported`) or `lifetime_s` after
    they were noted, whichever is first.
    """

    def __init__(self, lifetime_s: float = TICKET_LIFETIME_S) -> None:
        self._lifetime_s = lifetime_s
        self._noted: dict[int, list[float]] = {}

    def note_redirect(self, server_id: int, now: float) -> None:
        """Count one session just sent (ticket created) to `server_id`."""
        self._noted.setdefault(server_id, []).append(now)

    def status_reported(self, server_id: int, now: float) -> None:
        """The server's report sent at or after `now` includes everything noted up to `now`."""
        times = self._noted.get(server_id)
        if times is not None:
            kept = [t for t in times if t > now]
            self._set(server_id, kept)

    def forget(self, server_id: int) -> None:
        """Drop everything about a server (evicted or removed)."""
        self._noted.pop(server_id, None)

    def pending(self, server_id: int, now: float) -> int:
        """How many redirects to `server_id` still count as load at `now`."""
        times = self._noted.get(server_id)
        if not times:
            return 0
        kept = [t for t in times if now < t + self._lifetime_s]
        self._set(server_id, kept)
        return len(kept)

    def expire(self, now: float) -> None:
        """Drop every entry older than the lifetime at `now`."""
        for server_id in list(self._noted):
            self.pending(server_id, now)

    def next_deadline(self) -> float | None:
        """When the oldest entry runs out, or None when the book is empty."""
        firsts = [min(times) for times in self._noted.values() if times]
        return min(firsts) + self._lifetime_s if firsts else None

    def _set(self, server_id: int, kept: list[float]) -> None:
        if kept:
            self._noted[server_id] = kept
        else:
            self._noted.pop(server_id, None)
