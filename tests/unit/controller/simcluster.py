"""In-memory cluster: the daemon's ControllerCore and N members (STYLE.md §6).

The controller is controller/core.ControllerCore, driven exactly as
node/cluster/controller_role.py drives it (receive, peer outcomes, timer,
actions pulled after each input). Each member runs the member link core
(node/cluster/member_link.MemberLink) and does what MemberRole does with
the real message records of controller/messages.py: the join handshake
(JoinHello, JoinProof, MemberJoinAuth checking the controller's proof),
PushConfig into its hub configuration, StatusPoll answered from its hubs,
sessions and tickets, Create/DeleteHubInstance, Rejoin, CreateTicket. Each
node runs the hubs the daemon's data plane would: its static hubs, and the
dynamic ones placed on it.

Messages travel through one in-memory wire (a deque) and are lost when the
link is down (`drop`, `partition`), as on the real bus; a request whose
reply never comes fails after its timeout, as vpnbus reports it. A member
notices a silent controller after the liveness timeout (vpnbus PeerSilent).
CheckEndpoint is answered at once: OK, unless the member is in
`endpoint_faults` (set at construction; `endpoint_fixed` removes it).
`drain`/`undrain` change the drain orders of the configuration, as the
admin methods do; a member answers EnumSessions from its sessions and
DeleteSession by ending one, noted in `kicked` (its client reconnects when
the test says so).

Time is virtual: `advance(seconds)` jumps from deadline to deadline (the
cores' `next_deadline()`, request timeouts, controller silence), so a test
covering minutes runs in milliseconds and every deadline is hit exactly.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import deque
from dataclasses import dataclass, field

from controller import core as cc
from controller import core_io as ci
from controller import messages as msg
from controller.drain import DrainOrder
from controller.errors import ControllerError
from controller.joinauth import MemberJoinAuth
from controller.placement import CreateHubInstance, DeleteHubInstance
from controller.points import points
from controller.registry import ME_ID, HubInstance, JoinInfo, MemberStatus, hub_key
from controller.tickets import TicketBook, TicketGrant, new_ticket
from node.cluster.member_link import Connect, Disconnect, LinkState, MemberLink
from node.softether.errors import Err

CONTROLLER = "controller"
PASSWORD_HASH = hashlib.sha1(b"admin password").digest()  # stands for SHA0(pw): any 20 bytes
MAX_STEPS = 1_000_000
RETRY_INTERVAL_S = 1.0  # SoftEther's member retries every second


class LinkDown(Exception):
    """The controller could not reach the chosen server (sim only)."""


@dataclass
class Session:
    server: str
    member_id: int
    hub: str
    name: str


@dataclass(frozen=True)
class _Refused:
    """A request's error reply (what vpnbus delivers as RemoteError)."""

    code: int
    text: str


@dataclass
class SimNode:
    """What a vpnd keeps that the cluster cares about: hub configs, placed
    dynamic hubs, sessions, tickets."""

    name: str
    key: bytes
    weight: int = 100
    password_hash: bytes = PASSWORD_HASH
    up: bool = True
    configs: dict[str, msg.HubConfig] = field(default_factory=dict)
    dynamic: set[str] = field(default_factory=set)
    sessions_of: dict[str, set[str]] = field(default_factory=dict)
    tickets: TicketBook = field(default_factory=TicketBook)
    link: MemberLink = field(default_factory=lambda: MemberLink(retry_interval_s=RETRY_INTERVAL_S, jitter_s=0.0,
                                                                rng=random.Random(0)))
    auth: MemberJoinAuth | None = None
    push_serial: int = -1
    last_ctl_heard_at: float = 0.0

    @property
    def hubs(self) -> dict[str, tuple[str, bool, set[str]]]:
        """The hubs this node runs (as its data plane would): lower-case name → (name, dynamic, sessions)."""
        out = {}
        for key, hub in self.configs.items():
            dynamic = hub.hub_type == cc.DYNAMIC_HUB_TYPE
            if not dynamic or key in self.dynamic:
                out[key] = (hub.name, dynamic, self.sessions_of.setdefault(key, set()))
        return out

    @property
    def joined(self) -> bool:
        return self.link.state is LinkState.ONLINE

    @property
    def joins_ok(self) -> int:
        return self.link.num_connected

    @property
    def joins_failed(self) -> int:
        return self.link.num_failed

    def sessions(self) -> int:
        return sum(len(s) for _, _, s in self.hubs.values())

    def status(self, now: float) -> MemberStatus:
        load = self.sessions()
        hubs = tuple(HubInstance(name=n, dynamic=d, sessions=len(s)) for n, d, s in self.hubs.values())
        return MemberStatus(points=points(load, self.weight), sessions=load, tcp_connections=load, hubs=hubs,
                            tickets_outstanding=self.tickets.outstanding(now))

    def report(self, now: float) -> msg.StatusReport:
        status = self.status(now)
        return msg.StatusReport(points=status.points, sessions=status.sessions,
                                tcp_connections=status.tcp_connections, max_sessions=0,
                                hubs=[msg.HubReport(name=h.name, dynamic=h.dynamic, sessions=h.sessions)
                                      for h in status.hubs],
                                tickets_outstanding=status.tickets_outstanding)

    def info(self) -> JoinInfo:
        return JoinInfo(hostname=self.name, public_ip="127.0.0.1", public_ports=(5555,), weight=self.weight)

    def hello(self) -> msg.JoinHello:
        info = self.info()
        return msg.JoinHello(version=msg.PROTOCOL_VERSION, nonce=self.auth.hello() if self.auth else b"",
                             hostname=info.hostname, public_ip=info.public_ip,
                             public_ports=list(info.public_ports), weight=info.weight, max_sessions=0,
                             server_cert=b"")

    def set_instance(self, hub: str, running: bool) -> None:
        (self.dynamic.add if running else self.dynamic.discard)(hub_key(hub))
        self._end_orphans()

    def apply_push(self, push: msg.PushConfig) -> None:
        if push.serial < self.push_serial:
            return
        self.push_serial = push.serial
        self.configs = {hub_key(h.name): h for h in push.hubs}
        self._end_orphans()

    def lose_state(self) -> None:
        """The process died: hubs, placements, sessions and tickets are gone."""
        self.configs.clear()
        self.dynamic.clear()
        self.sessions_of.clear()
        self.tickets = TicketBook()
        self.push_serial = -1

    def _end_orphans(self) -> None:
        running = self.hubs
        for key in list(self.sessions_of):
            if key not in running:
                del self.sessions_of[key]  # its instance stopped: its sessions end


@dataclass
class _Pending:
    """A request on the wire, as vpnbus tracks it: answered, or failed at its deadline."""

    src: str
    dst: str
    deadline: float
    token: int | None = None
    """The controller core's token (requests the controller made)."""
    reply: object | None = None


def hub_config(name: str, dynamic: bool) -> msg.HubConfig:
    return msg.HubConfig(name=name, hub_type=cc.DYNAMIC_HUB_TYPE if dynamic else 1, online=True, max_session=0,
                         no_enum=False, hashed_password=b"", secure_password=b"", created_time=0.0, users=[])


class SimCluster:
    def __init__(self, weights: list[int], *, controller_only: bool = True,
                 liveness_timeout_s: float = 3.0, password_hashes: dict[str, bytes] | None = None,
                 endpoint_faults: dict[str, str] | None = None) -> None:
        self.now = 0.0
        self.liveness_timeout_s = liveness_timeout_s
        self.me = SimNode(name=CONTROLLER, key=b"C" * 32)
        self.controller_only = controller_only
        self.serial = 1
        self.drains: dict[str, float] = {}
        """Member name → rate of the drain order in the configuration."""
        self.kicked: list[tuple[float, Session]] = []
        """(time, session) of every session a member ended on the controller's DeleteSession."""
        self.core = cc.ControllerCore(key=self.me.key, info=self.me.info(), config=self._config(), now=self.now,
                                      liveness_timeout_s=liveness_timeout_s)
        self.registry = self.core.registry
        self.placement = self.core.placement
        self.members = {f"m{i}": SimNode(name=f"m{i}", key=bytes([i + 1]) * 32, weight=w)
                        for i, w in enumerate(weights)}
        for name, pw in (password_hashes or {}).items():
            self.members[name].password_hash = pw
        self._names = {m.key: name for name, m in self.members.items()}
        self.endpoint_faults: dict[str, str] = dict(endpoint_faults or {})
        """Member name → why its public endpoint fails a check (absent: it answers)."""
        self.endpoint_checks: list[tuple[float, str]] = []
        """(time, member name) of every endpoint check the controller asked for."""
        self.log: list[tuple[float, object]] = []
        self.actions: list[object] = []
        """Every hub instance order the controller gave, as placement actions."""
        self._cut: set[frozenset[str]] = set()
        self._wire: deque[tuple[str, str, object, int | None]] = deque()
        self._pending: dict[int, _Pending] = {}
        self._request_ids = itertools.count(1)
        self._random = itertools.count(1)
        self._placed: dict[int, ci.LoginOutcome] = {}
        for m in self.members.values():
            m.link.start(self.now)
        self.advance(0.0)

    # ----- faults ----------------------------------------------------------

    def drop(self, name: str) -> None:
        """The member process dies: its sessions, hubs and tickets are gone."""
        m = self.members[name]
        m.up = False
        m.lose_state()
        m.link = MemberLink(retry_interval_s=RETRY_INTERVAL_S, jitter_s=0.0, rng=random.Random(0))

    def restart(self, name: str) -> None:
        m = self.members[name]
        m.up = True
        m.link.start(self.now)
        self._pump_member(m)

    def partition(self, a: str, b: str) -> None:
        self._cut.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._cut.discard(frozenset((a, b)))

    def link_up(self, name: str) -> bool:
        return self.members[name].up and frozenset((CONTROLLER, name)) not in self._cut

    def endpoint_fixed(self, name: str) -> None:
        """The member's public endpoint answers from now on (its next check passes)."""
        self.endpoint_faults.pop(name, None)

    @property
    def ids(self) -> dict[str, int]:
        """Member name → its id at the controller (for those it knows)."""
        out = {}
        for name, m in self.members.items():
            entry = self.registry.by_key(m.key)
            if entry is not None:
                out[name] = entry.member_id
        return out

    # ----- configuration and clients ---------------------------------------------

    def drain(self, name: str, rate: float) -> None:
        self.drains[name] = rate
        self._reconfigure()

    def undrain(self, name: str) -> None:
        self.drains.pop(name, None)
        self._reconfigure()

    def _reconfigure(self) -> None:
        self.serial += 1
        self.core.configure(self._config(), self.now)
        self._pump()

    def create_hub(self, name: str, dynamic: bool) -> None:
        self.me.configs[hub_key(name)] = hub_config(name, dynamic)
        self.serial += 1
        self.core.configure(self._config(), self.now)
        self._pump()

    def server(self, member_id: int) -> SimNode:
        if member_id == ME_ID:
            return self.me
        key = self.registry.get(member_id).public_key
        return self.members[self._names[key]]

    def issue(self, hub: str, user: str = "alice") -> tuple[SimNode, bytes, int]:
        """The controller side of a login, as the daemon does it
        (ControllerCore.place_login): place it, the chosen member stores a
        ticket and acknowledges it (a silent one is skipped after the ticket
        deadline, virtual time passing meanwhile). Returns the server the
        client goes to, the ticket to log in with there, and its id."""
        login_id = self.core.place_login(ci.LoginRequest(hub=hub, user_name=user, real_user_name=user), self.now)
        self._pump()
        for _ in range(MAX_STEPS):
            if login_id in self._placed:
                break
            self.advance(0.05)
        else:
            raise RuntimeError("login never placed")
        outcome = self._placed.pop(login_id)
        self.log.append((self.now, outcome))
        if isinstance(outcome, ci.LoginFailed):
            raise LinkDown(str(outcome.error))
        if isinstance(outcome, ci.KeepLocal):
            # The controller keeps it: the client logs in here, no ticket on the wire.
            ticket = new_ticket(lambda n: next(self._random).to_bytes(n, "big"))
            grant = TicketGrant(hub=hub, user_name=user, real_user_name=user, session_name=outcome.session_name)
            self.me.tickets.store(ticket, grant, self.now)
            return self.me, ticket, ME_ID
        return self.server(outcome.member_id), outcome.ticket, outcome.member_id

    def redeem(self, target: SimNode, ticket: bytes, hub: str) -> Session:
        """Member side of a ticket login."""
        grant = target.tickets.redeem(ticket, hub, self.now)
        _, _, sessions = target.hubs[hub_key(grant.hub)]
        sessions.add(grant.session_name)
        member_id = ME_ID if target is self.me else self.ids[target.name]
        return Session(server=target.name, member_id=member_id, hub=grant.hub, name=grant.session_name)

    def connect(self, hub: str, user: str = "alice") -> Session:
        target, ticket, _ = self.issue(hub, user)
        return self.redeem(target, ticket, hub)

    def disconnect(self, session: Session) -> None:
        server = self.me if session.server == CONTROLLER else self.members[session.server]
        server.sessions_of.get(hub_key(session.hub), set()).discard(session.name)

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
        times = [self.core.next_deadline(), *(p.deadline for p in self._pending.values())]
        for m in (self.me, *self.members.values()):
            d = m.tickets.next_deadline()
            if d is not None:
                times.append(d)
        for m in self.members.values():
            if m.up:
                d = m.link.next_deadline()
                if d is not None:
                    times.append(d)
                if m.joined:
                    times.append(m.last_ctl_heard_at + self.liveness_timeout_s)
        return times

    def _tick(self) -> None:
        now = self.now
        for request_id, p in list(self._pending.items()):
            if now >= p.deadline:
                del self._pending[request_id]
                self._request_failed(p, "request timed out")
        for m in (self.me, *self.members.values()):
            m.tickets.handle_timer(now)
        for m in self.members.values():
            if not m.up:
                continue
            if m.joined and now >= m.last_ctl_heard_at + self.liveness_timeout_s:
                # vpnbus PeerSilent: the member rejoins (and keeps its sessions).
                m.link.lost(now, Err.DISCONNECTED, "the controller was silent")
            m.link.handle_timer(now)
            self._pump_member(m)
        self.core.handle_timer(now)
        self._pump()

    # ----- the controller's edge (what ControllerRole does) ----------------------------

    def _config(self) -> ci.ClusterConfig:
        return ci.ClusterConfig(serial=self.serial, password_hash=PASSWORD_HASH,
                                controller_only=self.controller_only, hubs=tuple(self.me.configs.values()),
                                drains=tuple(DrainOrder(self.members[n].key, rate) for n, rate in self.drains.items()))

    def _pump(self) -> None:
        """Carry out the core's actions and deliver what they sent, until it has no more."""
        for _ in range(MAX_STEPS):
            actions = self.core.take_actions()
            for action in actions:
                self._carry_out(action)
            self._deliver()
            if not actions:
                return
        raise RuntimeError("controller did not settle")

    def _carry_out(self, action: ci.Action) -> None:
        if isinstance(action, ci.Send):
            self._send(CONTROLLER, self._names[action.peer], action.message)
            self._trace(action.peer, action.message)
        elif isinstance(action, ci.Request):
            self._request(CONTROLLER, self._names[action.peer], action.message, action.timeout_s,
                          token=action.token)
        elif isinstance(action, ci.SetLocalInstance):
            self.me.set_instance(action.hub, action.running)
            order = CreateHubInstance(member_id=ME_ID, hub=action.hub, dynamic=True) if action.running \
                else DeleteHubInstance(member_id=ME_ID, hub=action.hub, reason="")
            self.actions.append(order)
        elif isinstance(action, ci.PollLocal):
            self.core.local_status(self.me.status(self.now), self.now)
        elif isinstance(action, ci.LoginPlaced):
            self._placed[action.login_id] = action.outcome
        elif isinstance(action, (ci.ClusterEvent, ci.Log)):
            self.log.append((self.now, action.event if isinstance(action, ci.ClusterEvent) else action))
        elif isinstance(action, ci.CheckEndpoint):
            name = self._names[self.registry.get(action.member_id).public_key]
            self.endpoint_checks.append((self.now, name))
            reason = self.endpoint_faults.get(name)
            self.core.endpoint_checked(action.member_id, reason is None, reason or "", self.now)
        # Forget changes nothing in memory.

    def _trace(self, peer: bytes, message: object) -> None:
        entry = self.registry.by_key(peer)
        member_id = entry.member_id if entry else 0
        if isinstance(message, msg.CreateHubInstance):
            self.actions.append(CreateHubInstance(member_id=member_id, hub=message.hub, dynamic=True))
        elif isinstance(message, msg.DeleteHubInstance):
            self.actions.append(DeleteHubInstance(member_id=member_id, hub=message.hub, reason=message.reason))

    def _at_controller(self, src: str, message: object) -> object:
        m = self.members[src]
        try:
            return self.core.receive(m.key, "127.0.0.1", message, self.now)
        except ControllerError as exc:
            self.log.append((self.now, exc))
            return _Refused(int(Err.ACCESS_DENIED), str(exc))

    def _request_failed(self, p: _Pending, reason: str) -> None:
        if p.token is not None:
            self.core.request_failed(p.token, reason, self.now)
        elif p.dst == CONTROLLER:
            self._join_failed(self.members[p.src], reason)

    # ----- a member's edge (what MemberRole does) ------------------------------------

    def _pump_member(self, m: SimNode) -> None:
        for action in m.link.take_actions():
            if isinstance(action, Connect):
                self._join(m, action.attempt)
            elif isinstance(action, Disconnect):
                m.auth = None

    def _join(self, m: SimNode, attempt: int) -> None:
        if not self.link_up(m.name):
            m.link.failed(attempt, self.now, Err.CONNECT_TO_FARM_CONTROLLER, "cannot reach the controller")
            return
        m.link.discovered(attempt, self.now, "controller", None)
        m.auth = MemberJoinAuth(m.password_hash, m.key, self.me.key)
        self._request(m.name, CONTROLLER, m.hello(), cc.PUSH_TIMEOUT_S)

    def _join_failed(self, m: SimNode, reason: str) -> None:
        m.link.failed(m.link.attempt, self.now, Err.ACCESS_DENIED, reason)
        self._pump_member(m)

    def _at_member_reply(self, m: SimNode, reply: object) -> None:
        """A reply to one of the member's join requests."""
        if m.auth is None:
            return
        if isinstance(reply, _Refused):
            self._join_failed(m, reply.text)
        elif isinstance(reply, msg.JoinChallenge):
            self._request(m.name, CONTROLLER, msg.JoinProof(proof=m.auth.receive_challenge(reply.nonce)),
                          cc.PUSH_TIMEOUT_S)
        elif isinstance(reply, msg.JoinAccepted):
            m.auth.receive_accept(reply.proof)
            m.push_serial = -1
            m.last_ctl_heard_at = self.now
            m.link.joined(m.link.attempt, self.now, reply.member_id)
            self._pump_member(m)

    def _at_member(self, m: SimNode, message: object) -> object | None:
        m.last_ctl_heard_at = self.now
        if not m.joined:
            return _Refused(int(Err.ACCESS_DENIED), "not joined")
        if isinstance(message, msg.StatusPoll):
            return m.report(self.now)
        if isinstance(message, msg.PushConfig):
            m.apply_push(message)
        elif isinstance(message, msg.CreateHubInstance):
            m.set_instance(message.hub, True)
        elif isinstance(message, msg.DeleteHubInstance):
            m.set_instance(message.hub, False)
        elif isinstance(message, msg.Rejoin):
            m.link.lost(self.now, Err.DISCONNECTED, message.reason)
            self._pump_member(m)
        elif isinstance(message, msg.CreateTicket):
            grant = TicketGrant(hub=message.hub, user_name=message.user_name,
                                real_user_name=message.real_user_name, group=message.group,
                                session_name=message.session_name, policy=message.policy)
            m.tickets.store(message.ticket, grant, self.now)
            return msg.TicketCreated(points=m.status(self.now).points)
        elif isinstance(message, msg.EnumSessions):
            running = m.hubs.get(hub_key(message.hub))
            names = sorted(running[2]) if running else []
            return msg.SessionList(sessions=[msg.SessionRow(
                name=n, username="", client_ip="", client_hostname="", created_time=0.0, last_comm_time=0.0,
                tcp_connections=1, max_tcp_connections=1, packet_bytes=0, packet_count=0) for n in names])
        elif isinstance(message, msg.DeleteSession):
            running = m.hubs.get(hub_key(message.hub))
            if running is None or message.name not in running[2]:
                return _Refused(int(Err.OBJECT_NOT_FOUND), "no such session")
            running[2].discard(message.name)
            self.kicked.append((self.now, Session(server=m.name, member_id=self.ids[m.name], hub=running[0],
                                                  name=message.name)))
        return msg.Ack()

    # ----- the wire --------------------------------------------------------------------

    def _send(self, src: str, dst: str, message: object, request_id: int | None = None) -> None:
        member = dst if src == CONTROLLER else src
        if self.link_up(member):
            self._wire.append((src, dst, message, request_id))

    def _request(self, src: str, dst: str, message: object, timeout_s: float, *,
                 token: int | None = None) -> _Pending:
        request_id = next(self._request_ids)
        pending = self._pending[request_id] = _Pending(src=src, dst=dst, deadline=self.now + timeout_s, token=token)
        self._send(src, dst, message, request_id)
        return pending

    def _deliver(self) -> None:
        for _ in range(MAX_STEPS):
            if not self._wire:
                return
            src, dst, message, request_id = self._wire.popleft()
            if isinstance(message, _Reply):
                self._reply_arrived(message)
                continue
            if dst == CONTROLLER:
                answer = self._at_controller(src, message)
            else:
                answer = self._at_member(self.members[dst], message)
            if request_id is not None and answer is not None:
                self._send(dst, src, _Reply(request_id, answer))
            if dst == CONTROLLER:
                self._pump()  # after the reply: the core's contract (see ControllerCore)
        raise RuntimeError("wire did not drain")

    def _reply_arrived(self, reply: _Reply) -> None:
        p = self._pending.pop(reply.request_id, None)
        if p is None:
            return  # timed out already
        p.reply = reply.message
        if p.token is not None:
            if isinstance(reply.message, _Refused):
                self.core.request_failed(p.token, reply.message.text, self.now)
            else:
                self.core.reply_received(p.token, reply.message, self.now)
        elif p.dst == CONTROLLER:
            self._at_member_reply(self.members[p.src], reply.message)


@dataclass(frozen=True)
class _Reply:
    request_id: int
    message: object
