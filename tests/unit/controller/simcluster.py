"""In-memory cluster: one controller core and N fake members (STYLE.md §6).

The controller side wires the real cores the way the daemon will: Registry
(liveness, load), Placement (hubs), ControllerJoinAuth (join), new_ticket;
each member is a small fake holding a real TicketBook and a hub table, that
joins with MemberJoinAuth, sends a heartbeat and a status report every
second, and rejoins when it loses the controller. Messages travel through
one in-memory wire (a deque) and are lost when the link is down (`drop`,
`partition`), as on the real bus.

Time is virtual: `advance(seconds)` jumps from deadline to deadline (every
core's `next_deadline()` and the fakes' timers), so a test covering minutes
runs in milliseconds and every deadline is hit exactly.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from dataclasses import dataclass, field

from controller.errors import AuthFailed, IllegalTransition, InvalidReport
from controller.joinauth import ControllerJoinAuth, MemberJoinAuth
from controller.placement import CreateHubInstance, DeleteHubInstance, Placement
from controller.points import points
from controller.registry import (
    ME_ID, HubInstance, JoinInfo, MemberEvicted, MemberJoined, MemberLeft, MemberRejoined, MemberStatus, Registry,
    hub_key,
)
from controller.tickets import TicketBook, TicketGrant, new_ticket

CONTROLLER = "controller"
PASSWORD_HASH = hashlib.sha1(b"admin password").digest()  # stands for SHA0(pw): any 20 bytes
MAX_STEPS = 1_000_000


class LinkDown(Exception):
    """The controller could not reach the chosen server (sim only)."""


@dataclass
class Session:
    server: str
    member_id: int
    hub: str
    name: str


@dataclass
class FakeServer:
    """What a vpnd keeps that the controller cares about: hubs, sessions, tickets."""

    name: str
    key: bytes
    weight: int = 100
    password_hash: bytes = PASSWORD_HASH
    up: bool = True
    joined: bool = False
    tickets: TicketBook = field(default_factory=TicketBook)
    hubs: dict[str, tuple[str, bool, set[str]]] = field(default_factory=dict)
    next_try_at: float = 0.0
    next_beat_at: float = 0.0
    last_ctl_heard_at: float = 0.0
    joins_ok: int = 0
    joins_failed: int = 0

    def sessions(self) -> int:
        return sum(len(s) for _, _, s in self.hubs.values())

    def status(self, now: float) -> MemberStatus:
        load = self.sessions()
        hubs = tuple(HubInstance(name=n, dynamic=d, sessions=len(s)) for n, d, s in self.hubs.values())
        return MemberStatus(points=points(load, self.weight), sessions=load, tcp_connections=load, hubs=hubs,
                            tickets_outstanding=self.tickets.outstanding(now))

    def info(self) -> JoinInfo:
        return JoinInfo(hostname=self.name, public_ip="127.0.0.1", public_ports=(5555,), weight=self.weight)

    def lose_state(self) -> None:
        self.hubs.clear()
        self.tickets = TicketBook()
        self.joined = False


class SimCluster:
    def __init__(self, weights: list[int], *, controller_only: bool = True, beat_interval_s: float = 1.0,
                 liveness_timeout_s: float = 3.0, password_hashes: dict[str, bytes] | None = None) -> None:
        self.now = 0.0
        self.beat_s = beat_interval_s
        self.me = FakeServer(name=CONTROLLER, key=b"C" * 32, joined=True)
        self.registry = Registry(self.me.key, self.me.info(), self.now, liveness_timeout_s=liveness_timeout_s,
                                 suspect_after_s=liveness_timeout_s * 2 / 3)
        self.placement = Placement(self.registry, controller_only=controller_only)
        self.members = {f"m{i}": FakeServer(name=f"m{i}", key=bytes([i + 1]) * 32, weight=w)
                        for i, w in enumerate(weights)}
        for name, pw in (password_hashes or {}).items():
            self.members[name].password_hash = pw
        self.ids: dict[str, int] = {}
        self.log: list[tuple[float, object]] = []
        self.actions: list[object] = []
        self._cut: set[frozenset[str]] = set()
        self._wire: deque[tuple[str, str, tuple]] = deque()
        self._random = itertools.count(1)
        self._sessions = itertools.count(1)
        self._next_ctl_beat_at = 0.0
        self.advance(0.0)

    # ----- faults ----------------------------------------------------------

    def drop(self, name: str) -> None:
        """The member process dies: its sessions, hubs and tickets are gone."""
        m = self.members[name]
        m.up = False
        m.lose_state()

    def restart(self, name: str) -> None:
        m = self.members[name]
        m.up, m.next_try_at = True, self.now

    def partition(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._cut.discard(frozenset((a, b)))

    def link_up(self, name: str) -> bool:
        return self.members[name].up and frozenset((CONTROLLER, name)) not in self._cut

    # ----- clients -----------------------------------------------------------

    def server(self, member_id: int) -> FakeServer:
        if member_id == ME_ID:
            return self.me
        return next(self.members[n] for n, i in self.ids.items() if i == member_id)

    def issue(self, hub: str, user: str = "alice") -> tuple[FakeServer, bytes, int]:
        """Controller side of a login: place, start hub if needed, store a ticket."""
        decision = self.placement.place_session(hub, self.now)
        self.log.append((self.now, decision))
        self._perform(list(decision.actions))
        ticket = new_ticket(lambda n: next(self._random).to_bytes(n, "big"))
        grant = TicketGrant(hub=decision.hub, user_name=user, real_user_name=user,
                            session_name=f"SID-{user.upper()}-{next(self._sessions)}")
        target = self.server(decision.member_id)
        if target is not self.me and not self.link_up(target.name):
            raise LinkDown(target.name)
        # The store is acknowledged before the redirect is sent (DESIGN.md).
        target.tickets.store(ticket, grant, self.now)
        self.registry.note_redirect(decision.member_id, self.now)
        return target, ticket, decision.member_id

    def redeem(self, target: FakeServer, ticket: bytes, hub: str) -> Session:
        """Member side of a ticket login."""
        grant = target.tickets.redeem(ticket, hub, self.now)
        _, _, sessions = target.hubs[hub_key(grant.hub)]
        sessions.add(grant.session_name)
        return Session(server=target.name, member_id=self.registry.by_key(target.key).member_id,
                       hub=grant.hub, name=grant.session_name)

    def connect(self, hub: str, user: str = "alice") -> Session:
        target, ticket, _ = self.issue(hub, user)
        return self.redeem(target, ticket, hub)

    def disconnect(self, session: Session) -> None:
        server = self.me if session.server == CONTROLLER else self.members[session.server]
        entry = server.hubs.get(hub_key(session.hub))
        if entry is not None:
            entry[2].discard(session.name)

    def create_hub(self, name: str, dynamic: bool) -> None:
        self._perform(self.placement.hub_created(name, dynamic=dynamic))

    # ----- time ----------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Run every timer due within `seconds`, deadline by deadline."""
        target = self.now + seconds
        for _ in range(MAX_STEPS):
            self._tick()
            nxt = min((t for t in self._deadlines() if t > self.now), default=target)
            if nxt > target:
                break
            self.now = nxt
        else:
            raise RuntimeError("simulation did not settle")
        self.now = target
        self._tick()

    def _deadlines(self) -> list[float]:
        times = [self._next_ctl_beat_at]
        for core in (self.registry, self.placement):
            d = core.next_deadline()
            if d is not None:
                times.append(d)
        for m in self.members.values():
            if m.up:
                times.append(m.next_beat_at if m.joined else m.next_try_at)
                if m.joined:
                    times.append(m.last_ctl_heard_at + self.registry.liveness_timeout_s)
            d = m.tickets.next_deadline()
            if d is not None:
                times.append(d)
        return times

    def _tick(self) -> None:
        now = self.now
        for m in self.members.values():
            m.tickets.handle_timer(now)
            if not m.up:
                continue
            if m.joined and now >= m.last_ctl_heard_at + self.registry.liveness_timeout_s:
                # The controller went silent: this member rejoins (and keeps its sessions).
                m.joined, m.next_try_at = False, now
            if not m.joined and now >= m.next_try_at:
                m.next_try_at = now + 1.0  # SoftEther retries every 1 s
                self._join(m)
            if m.joined and now >= m.next_beat_at:
                m.next_beat_at = now + self.beat_s
                self._send(m.name, CONTROLLER, ("status", m.status(now)))
        if now >= self._next_ctl_beat_at:
            self._next_ctl_beat_at = now + self.beat_s
            self.registry.update_me(self.me.status(now), now)
            self._perform(self.placement.status_reported(ME_ID, now))
            for name, m in self.members.items():
                if m.joined:
                    self._send(CONTROLLER, name, ("beat",))
        self._deliver()
        self.registry.handle_timer(now)
        self.placement.handle_timer(now)
        self._events()

    # ----- wiring ------------------------------------------------------------------

    def _send(self, src: str, dst: str, msg: tuple) -> None:
        member = dst if src == CONTROLLER else src
        if self.link_up(member):
            self._wire.append((src, dst, msg))

    def _deliver(self) -> None:
        for _ in range(MAX_STEPS):
            if not self._wire:
                return
            src, dst, msg = self._wire.popleft()
            if dst == CONTROLLER:
                self._at_controller(src, msg)
            else:
                self._at_member(self.members[dst], msg)
        raise RuntimeError("wire did not drain")

    def _at_controller(self, src: str, msg: tuple) -> None:
        member_id = self.ids[src]
        try:
            self.registry.status_reported(member_id, msg[1], self.now)
        except (IllegalTransition, InvalidReport) as exc:
            # Evicted meanwhile: it must rejoin and send its whole state.
            self.log.append((self.now, exc))
            self._send(CONTROLLER, src, ("rejoin",))
            return
        self._perform(self.placement.status_reported(member_id, self.now))
        self._events()

    def _at_member(self, m: FakeServer, msg: tuple) -> None:
        m.last_ctl_heard_at = self.now
        kind = msg[0]
        if kind == "rejoin":
            m.joined, m.next_try_at = False, self.now
        elif kind == "create":
            m.hubs.setdefault(hub_key(msg[1]), (msg[1], msg[2], set()))
        elif kind == "delete":
            m.hubs.pop(hub_key(msg[1]), None)

    def _join(self, m: FakeServer) -> None:
        if not self.link_up(m.name):
            m.joins_failed += 1
            return
        member_id = self.registry.link_opened(m.key, self.now)
        self.ids[m.name] = member_id
        side_m = MemberJoinAuth(m.password_hash, m.key, self.me.key)
        side_c = ControllerJoinAuth(PASSWORD_HASH, self.me.key, m.key)
        try:
            nonce_c = side_c.receive_hello(side_m.hello())
            side_m.receive_accept(side_c.receive_proof(side_m.receive_challenge(nonce_c)))
        except AuthFailed as exc:
            self.registry.join_failed(member_id, self.now)
            m.joins_failed += 1
            self.log.append((self.now, exc))
            self._events()
            return
        self.registry.joined(member_id, m.info(), self.now)
        m.joined, m.joins_ok = True, m.joins_ok + 1
        m.last_ctl_heard_at, m.next_beat_at = self.now, self.now
        self._events()

    def _events(self) -> None:
        for ev in self.registry.events():
            self.log.append((self.now, ev))
            if isinstance(ev, (MemberJoined, MemberRejoined)):
                self._perform(self.placement.member_joined(ev.member_id))
            elif isinstance(ev, (MemberEvicted, MemberLeft)):
                self.placement.member_gone(ev.member_id)

    def _perform(self, actions: list) -> None:
        for a in actions:
            self.actions.append(a)
            server = self.server(a.member_id)
            if isinstance(a, CreateHubInstance):
                msg: tuple = ("create", a.hub, a.dynamic)
            elif isinstance(a, DeleteHubInstance):
                msg = ("delete", a.hub)
            else:
                raise TypeError(a)
            if server is self.me:
                self._at_member(self.me, msg)
            else:
                self._send(CONTROLLER, server.name, msg)
        self._deliver()
