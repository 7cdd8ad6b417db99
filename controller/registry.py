"""The member registry: who is in the cluster, how loaded, how alive.

The controller keeps one entry per server. The first entry is its own
(`is_me`, SoftEther's `Me`, created at start and never evicted); the
members follow in the order of their latest successful join, which is
the order selection walks (SoftEther appends a joining member to
`FarmMemberList`; a rejoin is a new join, so it goes to the end again).

Ids: each entry has an opaque u32 id. SoftEther identifies members by a
pointer that changes on every join; ours is stable per CURVE public key for
the life of the controller process (the key is the member's identity on the
bus), so logs, vpnctl and tickets in flight keep naming the same member
across an eviction and rejoin. Ids are never reused for another key. The
controller's own entry has id 1.

Liveness: every message from a member (`heard`, `status_reported`) resets
its silence clock. Silent for `suspect_after_s` (2 s): SUSPECT, no new
sessions. Silent for `liveness_timeout_s` (3 s): EVICTED, out of load
balancing, its hub instances dropped from the view (manual 3.9.6). Selection
also checks silence itself, so a member is out the moment its time is up,
even before `handle_timer` runs. A (re)joined member is restored by its
first status report, which carries its whole state; until that report it
gets no sessions (it may hold sessions it kept while away). State changes go
through `member_life.transition` only; the registry emits past-tense events
(`MemberJoined`, `MemberEvicted`, ...) that the caller pulls with `events()`.

Load: the registry holds the `FreshLoad` book (see `selection`), so its
`candidates(now)` already count sessions just redirected.

Endpoint: a member gets sessions only once the controller verified that
clients can reach it where the redirect sends them (its public IP and ports
answer TLS with its own certificate; SoftEther does not check, and a wrong
public IP sends clients round in a loop, upstream issue #1803). The verdict
(`EndpointState`) is about one (public IP, ports, certificate): a rejoin with
the same three keeps it, any change makes it UNCHECKED again. The core asks
for the checks (CheckEndpoint) and feeds the verdicts in; the registry only
keeps the verdict and refuses sessions without an OK one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from enum import Enum

from controller.errors import InvalidReport, MemberUnknown
from controller.member_life import (
    HOSTS_HUBS, LISTED, TAKES_SESSIONS, WATCHED, MemberDrained, MemberEvent, MemberEvicted, MemberJoined, MemberJoinFailed,
    MemberLeft, MemberRecovered, MemberRejoined, MemberState, MemberSuspected, MemberUndrained, RegistryEvent,
    transition,
)
from controller.points import DEFAULT_MAX_SESSIONS, FARM_BASE_POINT
from controller.selection import TICKET_LIFETIME_S, Candidate, FreshLoad, HighestPoints, SelectionDecision, SelectionPolicy

MAX_PUBLIC_PORTS = 128
EMPTY_SKIP: Mapping[int, str] = MappingProxyType({})
ME_ID = 1
MAX_MEMBER_ID = 0xFFFF_FFFF  # ids are u32 on the admin API


def hub_key(name: str) -> str:
    """Hub names compare case-insensitively, as in SoftEther (StrCmpi)."""
    return name.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class HubInstance:
    """One hub instance on one server, as reported or as placed."""

    name: str
    dynamic: bool
    sessions: int = 0
    mac_entries: int = 0
    ip_entries: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinInfo:
    """What a server tells the controller when it joins (SoftEther `farm_connect`)."""

    hostname: str
    public_ip: str
    """Address clients are redirected to ("" = the source address of its link)."""
    public_ports: tuple[int, ...]
    weight: int = 100
    max_sessions: int = 0
    """Its session limit; 0 = the points cap."""
    server_cert: bytes = b""
    """DER of its TLS certificate, sent to clients in the redirect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberStatus:
    """A periodic status report (SoftEther `enumhub` reply)."""

    points: int
    sessions: int
    tcp_connections: int = 0
    hubs: tuple[HubInstance, ...] = ()
    tickets_outstanding: int = 0
    """Tickets stored and not yet redeemed: sessions about to arrive."""


class EndpointState(Enum):
    """Whether clients redirected to a member reach it (see the module docstring)."""

    UNCHECKED = "unchecked"
    OK = "ok"
    FAILED = "failed"
    SUSPECT = "suspect"
    """Verified before, but redirected clients are not arriving: checked again (controller/arrivals.py)."""


Endpoint = tuple[str, tuple[int, ...], bytes]
"""(public IP, public ports, server certificate DER): what a redirect sends clients to."""


@dataclass(slots=True)
class Member:
    """One registry entry. Read it freely; only the Registry changes it."""

    member_id: int
    public_key: bytes
    is_me: bool
    state: MemberState
    last_heard_at: float
    hostname: str = ""
    public_ip: str = ""
    public_ports: tuple[int, ...] = ()
    weight: int = 100
    max_sessions: int = 0
    server_cert: bytes = b""
    points: int = FARM_BASE_POINT
    sessions: int = 0
    tcp_connections: int = 0
    tickets_outstanding: int = 0
    hubs: dict[str, HubInstance] = field(default_factory=dict)
    connected_at: float | None = None
    last_status_at: float | None = None
    evicted_at: float | None = None
    endpoint_state: EndpointState = EndpointState.UNCHECKED
    endpoint_error: str = ""
    """Why its endpoint failed the last check ("" unless FAILED)."""
    endpoint_checked: Endpoint | None = None
    """The endpoint the verdict is about (None: never checked)."""

    @property
    def endpoint(self) -> Endpoint:
        return self.public_ip, self.public_ports, self.server_cert

    def endpoint_problem(self) -> str | None:
        """Why clients may not be sent here for its endpoint, None if they may
        (always None for the controller: clients are already there)."""
        if self.is_me or self.endpoint_state is EndpointState.OK:
            return None
        if self.endpoint_state is EndpointState.UNCHECKED:
            return "endpoint not verified"
        if self.endpoint_state is EndpointState.SUSPECT:
            return "endpoint checked again: redirected clients did not arrive"
        return f"endpoint failed: {self.endpoint_error}"

    def status_age(self, now: float) -> float | None:
        """Seconds since the last status report, None if none yet."""
        return None if self.last_status_at is None else now - self.last_status_at


class Registry:
    """Members of one cluster as the controller sees them. `now` is monotonic seconds."""

    def __init__(
        self,
        me_key: bytes,
        me_info: JoinInfo,
        now: float,
        *,
        liveness_timeout_s: float = 3.0,
        suspect_after_s: float = 2.0,
        forget_after_s: float = 600.0,
        ticket_lifetime_s: float = TICKET_LIFETIME_S,
        points_max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        if not 0 < suspect_after_s <= liveness_timeout_s:
            raise ValueError("need 0 < suspect_after_s <= liveness_timeout_s")
        self.liveness_timeout_s = liveness_timeout_s
        self.suspect_after_s = suspect_after_s
        self.forget_after_s = forget_after_s
        self.points_max_sessions = points_max_sessions
        self.fresh = FreshLoad(ticket_lifetime_s)
        self._events: list[RegistryEvent] = []
        self._ids_by_key: dict[bytes, int] = {me_key: ME_ID}
        self._next_id = ME_ID + 1
        me = Member(member_id=ME_ID, public_key=me_key, is_me=True, state=MemberState.ONLINE, last_heard_at=now)
        self._apply_info(me, me_info)
        me.connected_at = now
        # Insertion order is selection order: Me first, then by latest join.
        self._members: dict[int, Member] = {ME_ID: me}

    # ----- lookups -------------------------------------------------------

    @property
    def me(self) -> Member:
        return self._members[ME_ID]

    def get(self, member_id: int) -> Member:
        """The entry for `member_id`; raises MemberUnknown."""
        try:
            return self._members[member_id]
        except KeyError:
            raise MemberUnknown(f"no member {member_id}") from None

    def by_key(self, public_key: bytes) -> Member | None:
        member_id = self._ids_by_key.get(public_key)
        return None if member_id is None else self._members.get(member_id)

    def members(self) -> list[Member]:
        """All entries in selection order (Me first), evicted ones included."""
        return list(self._members.values())

    def listed(self, now: float) -> list[Member]:
        """What the member list shows: Me, then members online or suspect and
        not yet silent for the liveness timeout (out of the list at once,
        before the timer tick evicts them)."""
        return [m for m in self._members.values()
                if m.is_me or (m.state in LISTED and now - m.last_heard_at < self.liveness_timeout_s)]

    def hosting_members(self, hub: str) -> list[int]:
        """Ids of live servers whose hub list holds `hub`, in list order."""
        key = hub_key(hub)
        return [m.member_id for m in self._members.values() if self._hosts(m) and key in m.hubs]

    def live_ids(self) -> list[int]:
        """Ids of servers that host hubs now (Me included), in list order."""
        return [m.member_id for m in self._members.values() if self._hosts(m)]

    # ----- member inputs -------------------------------------------------

    def link_opened(self, public_key: bytes, now: float) -> int:
        """A server with this CURVE key opened its bus link; returns its id.

        A new key gets a new entry (JOINING); a known one goes REJOINING.
        """
        member_id = self._ids_by_key.get(public_key)
        if member_id == ME_ID:
            raise InvalidReport("a member presented the controller's own key")
        if member_id is None:
            if self._next_id > MAX_MEMBER_ID:
                raise InvalidReport("member ids exhausted")
            member_id = self._next_id
            self._next_id += 1
            self._ids_by_key[public_key] = member_id
        m = self._members.get(member_id)
        if m is None:
            m = Member(member_id=member_id, public_key=public_key, is_me=False, state=MemberState.JOINING,
                       last_heard_at=now)
            self._members[member_id] = m
        else:
            self._change(m, MemberEvent.LINK_OPENED)
            m.last_heard_at = now
            m.hubs.clear()
            self.fresh.forget(member_id)
        return member_id

    def joined(self, member_id: int, info: JoinInfo, now: float) -> None:
        """The join handshake succeeded; the member is ONLINE and last in order.

        Raises InvalidReport (and the join fails) if `info` is out of range.
        """
        m = self._member(member_id)
        try:
            _check_info(info)
        except InvalidReport:
            self.join_failed(member_id, now)
            raise
        rejoin = m.state is MemberState.REJOINING
        self._change(m, MemberEvent.AUTHENTICATED)
        self._apply_info(m, info)
        if m.endpoint_checked != m.endpoint:  # a new address, ports or certificate: check again
            m.endpoint_state, m.endpoint_error = EndpointState.UNCHECKED, ""
        m.connected_at = m.last_heard_at = now
        m.last_status_at = None
        m.evicted_at = None
        m.points, m.sessions, m.tcp_connections, m.tickets_outstanding = FARM_BASE_POINT, 0, 0, 0
        # A (re)join is a new join: move to the end of the selection order.
        self._members[member_id] = self._members.pop(member_id)
        self._events.append((MemberRejoined if rejoin else MemberJoined)(member_id, m.hostname))

    def join_failed(self, member_id: int, now: float) -> None:
        m = self._member(member_id)
        self._change(m, MemberEvent.AUTH_FAILED)
        if m.state is MemberState.EVICTED:
            m.evicted_at = now
        self._events.append(MemberJoinFailed(member_id))
        self._drop_left(m)

    def heard(self, member_id: int, now: float) -> None:
        """Any message (heartbeat, reply) from the member arrived."""
        m = self._member(member_id)
        was = m.state
        self._change(m, MemberEvent.HEARD)
        m.last_heard_at = max(m.last_heard_at, now)
        if was is MemberState.SUSPECT and m.state is MemberState.ONLINE:
            self._events.append(MemberRecovered(member_id))

    def disconnected(self, member_id: int, now: float) -> None:
        """The member's bus connection closed: out at once if silence is watched."""
        m = self._member(member_id)
        if m.state in WATCHED:
            self._time_out(m, now - m.last_heard_at, now, MemberEvent.DISCONNECTED)

    def status_reported(self, member_id: int, status: MemberStatus, now: float) -> None:
        """A status report arrived: refresh load and hubs, end its fresh load."""
        m = self._member(member_id)
        if m.state not in HOSTS_HUBS:
            raise InvalidReport(f"status from member {member_id} in state {m.state.name}")
        _check_status(status)
        self.heard(member_id, now)
        self._apply_status(m, status, now)
        self.fresh.status_reported(member_id, now)

    def update_me(self, status: MemberStatus, now: float) -> None:
        """The controller's own figures (it counts its sessions locally)."""
        _check_status(status)
        self.me.last_heard_at = now
        self._apply_status(self.me, status, now)
        self.fresh.status_reported(ME_ID, now)

    # ----- operator and placement inputs ----------------------------------

    def drain(self, member_id: int) -> None:
        self._change(self._member(member_id), MemberEvent.DRAIN)
        self._events.append(MemberDrained(member_id))

    def undrain(self, member_id: int) -> None:
        self._change(self._member(member_id), MemberEvent.UNDRAIN)
        self._events.append(MemberUndrained(member_id))

    def note_redirect(self, member_id: int, now: float) -> None:
        """A session was just sent to `member_id` (ticket created): count it as load."""
        self.get(member_id)
        self.fresh.note_redirect(member_id, now)

    def endpoint_checked(self, member_id: int, ok: bool, reason: str) -> bool:
        """The verdict on `member_id`'s current endpoint; True if it changed
        (OK/FAILED, or the reason of a failure)."""
        m = self._member(member_id)
        state = EndpointState.OK if ok else EndpointState.FAILED
        error = "" if ok else (reason or "unknown reason")
        changed = (m.endpoint_state, m.endpoint_error) != (state, error)
        m.endpoint_state, m.endpoint_error, m.endpoint_checked = state, error, m.endpoint
        return changed

    def endpoint_suspect(self, member_id: int) -> bool:
        """Clients sent to a verified endpoint are not arriving: no sessions
        until a new check passes. False if it was not verified (nothing to do)."""
        m = self._member(member_id)
        if m.endpoint_state is not EndpointState.OK:
            return False
        m.endpoint_state = EndpointState.SUSPECT
        return True

    def record_hub_instance(self, member_id: int, name: str, dynamic: bool) -> None:
        """Placement asked `member_id` to run `name`; list it now (as SoftEther's SiCallCreateHub does)."""
        self.get(member_id).hubs.setdefault(hub_key(name), HubInstance(name=name, dynamic=dynamic))

    def drop_hub_instance(self, member_id: int, name: str) -> None:
        self.get(member_id).hubs.pop(hub_key(name), None)

    # ----- selection -----------------------------------------------------

    def candidates(self, now: float, skip: Mapping[int, str] = EMPTY_SKIP) -> list[Candidate]:
        """Every entry as a selection candidate, in order, with fresh load;
        the servers in `skip` are unavailable for the reason given."""
        out = []
        for m in self._members.values():
            out.append(
                Candidate(
                    server_id=m.member_id,
                    sessions=m.sessions + m.tickets_outstanding,
                    pending=self.fresh.pending(m.member_id, now),
                    weight=m.weight,
                    max_sessions=m.max_sessions,
                    points_max_sessions=self.points_max_sessions,
                    is_controller=m.is_me,
                    unavailable=skip.get(m.member_id) or self._unavailable(m, now),
                )
            )
        return out

    def select(
        self, now: float, *, controller_only: bool = False, policy: SelectionPolicy | None = None,
        skip: Mapping[int, str] = EMPTY_SKIP,
    ) -> SelectionDecision:
        """Choose a server for a new session, none of `skip` (id -> why);
        raises NoEligibleServer."""
        return (policy or HighestPoints()).choose(self.candidates(now, skip), controller_only=controller_only)

    # ----- time ----------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Apply every liveness deadline that has passed by `now`."""
        for m in list(self._members.values()):
            if m.is_me:
                continue
            silent = now - m.last_heard_at
            if m.state in WATCHED and silent >= self.liveness_timeout_s:
                self._time_out(m, silent, now)
            elif m.state is MemberState.ONLINE and silent >= self.suspect_after_s:
                self._change(m, MemberEvent.SILENT)
                self._events.append(MemberSuspected(m.member_id, silent))
            elif m.state is MemberState.EVICTED and m.evicted_at is not None:
                if now - m.evicted_at >= self.forget_after_s:
                    self._change(m, MemberEvent.FORGOTTEN)
                    self._drop_left(m)
        self.fresh.expire(now)

    def next_deadline(self) -> float | None:
        """The earliest time `handle_timer` has work to do, or None."""
        times = []
        for m in self._members.values():
            if m.is_me:
                continue
            if m.state is MemberState.ONLINE:
                times.append(m.last_heard_at + self.suspect_after_s)
            elif m.state in WATCHED:
                times.append(m.last_heard_at + self.liveness_timeout_s)
            elif m.state is MemberState.EVICTED and m.evicted_at is not None:
                times.append(m.evicted_at + self.forget_after_s)
        fresh = self.fresh.next_deadline()
        if fresh is not None:
            times.append(fresh)
        return min(times) if times else None

    def events(self) -> list[RegistryEvent]:
        """Pull (and clear) the events since the last call."""
        out, self._events = self._events, []
        return out

    # ----- internals -----------------------------------------------------

    def _member(self, member_id: int) -> Member:
        m = self.get(member_id)
        if m.is_me:
            raise MemberUnknown("the controller's own entry has no member life")
        return m

    def _change(self, m: Member, event: MemberEvent) -> None:
        m.state = transition(m.state, event)

    def _time_out(self, m: Member, silent: float, now: float,
                  event: MemberEvent = MemberEvent.TIMED_OUT) -> None:
        was = m.state
        self._change(m, event)
        if m.state is MemberState.LEFT:
            self._drop_left(m)
            return
        m.evicted_at = now
        hubs = tuple(h.name for h in m.hubs.values())
        m.hubs.clear()
        self.fresh.forget(m.member_id)
        if was is not MemberState.REJOINING:
            self._events.append(MemberEvicted(m.member_id, silent, hubs,
                                              disconnected=event is MemberEvent.DISCONNECTED))

    def _drop_left(self, m: Member) -> None:
        if m.state is MemberState.LEFT:
            del self._members[m.member_id]
            self.fresh.forget(m.member_id)
            self._events.append(MemberLeft(m.member_id))

    def _hosts(self, m: Member) -> bool:
        return m.is_me or m.state in HOSTS_HUBS

    def _unavailable(self, m: Member, now: float) -> str | None:
        if m.is_me:
            return None
        if m.state not in TAKES_SESSIONS:
            return m.state.value
        if m.last_status_at is None:
            # A (re)joined member may still hold sessions it kept while away;
            # until it says so its load is unknown, so it gets none yet.
            return "awaiting first status"
        silent = now - m.last_heard_at
        if silent >= self.liveness_timeout_s:
            return "silent (evicted)"
        if silent >= self.suspect_after_s:
            return "silent (suspect)"
        return m.endpoint_problem()

    @staticmethod
    def _apply_info(m: Member, info: JoinInfo) -> None:
        m.hostname, m.public_ip, m.public_ports = info.hostname, info.public_ip, tuple(info.public_ports)
        m.weight, m.max_sessions, m.server_cert = info.weight, info.max_sessions, info.server_cert

    @staticmethod
    def _apply_status(m: Member, status: MemberStatus, now: float) -> None:
        m.points, m.sessions, m.tcp_connections = status.points, status.sessions, status.tcp_connections
        m.tickets_outstanding = status.tickets_outstanding
        m.hubs = {hub_key(h.name): h for h in status.hubs}
        m.last_status_at = now


def _check_info(info: JoinInfo) -> None:
    if not info.hostname:
        raise InvalidReport("join without a host name")
    if not 1 <= len(info.public_ports) <= MAX_PUBLIC_PORTS:
        raise InvalidReport(f"join with {len(info.public_ports)} public ports (need 1..{MAX_PUBLIC_PORTS})")
    if any(not 1 <= p <= 65535 for p in info.public_ports):
        raise InvalidReport(f"public port out of range in {info.public_ports}")
    if info.weight < 0 or info.max_sessions < 0:
        raise InvalidReport("negative weight or session limit")


def _check_status(status: MemberStatus) -> None:
    counts = (status.sessions, status.tcp_connections, status.tickets_outstanding)
    if any(c < 0 for c in counts) or any(h.sessions < 0 for h in status.hubs):
        raise InvalidReport("negative count in status report")
    if not 0 <= status.points <= FARM_BASE_POINT:
        raise InvalidReport(f"points {status.points} outside 0..{FARM_BASE_POINT}")


__all__ = [
    "ME_ID", "Endpoint", "EndpointState", "HubInstance", "JoinInfo", "Member", "MemberStatus", "Registry",
    "RegistryEvent", "hub_key",
    "MemberJoined", "MemberRejoined", "MemberJoinFailed", "MemberSuspected", "MemberRecovered", "MemberEvicted",
    "MemberDrained", "MemberUndrained", "MemberLeft",
]
