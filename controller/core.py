"""ControllerCore: the whole controller of a cluster, without I/O.

Theory of operation. The core is fed what happens -- a bus message from a
peer (`receive`), a peer seen on the bus (`peer_seen`), the outcome of a
request it asked for (`reply_received`, `request_failed`), the controller's
own load (`local_status`), a configuration change (`configure`), a VPN
login to place (`place_session`) and the passing of time (`handle_timer`)
-- with the caller's monotonic `now`. It answers requests directly, queues
actions (`take_actions`: messages to send, requests to make, routes to
forget, dynamic hub instances to start or stop on this node, decided
logins, log lines)
and says when it next needs the timer (`next_deadline`). Its input and
action records are in controller/core_io.py. The daemon's
ControllerRole and the in-memory simulation drive this one class, so the
simulation tests the daemon's own logic.

It owns, and is the only thing that wires together:
- the join (JoinDesk + joinauth): JoinHello -> JoinChallenge, JoinProof ->
  JoinAccepted with the current admin password hash, refusals logged one
  line per burst; the registry hears of a member only once its proof
  verified;
- the registry (liveness, load, member life) and placement (hubs, dynamic
  hub life), turning their events into messages: a (re)joined member gets
  the configuration (ConfigSync) and a StatusPoll (its first report
  makes it selectable) right after its JoinAccepted; an
  evicted member gets Rejoin and its route is forgotten; a member that
  talks as if joined but is not (controller restarted, it was evicted) is
  told to Rejoin `rejoin_grace_s` after it was seen, unless it is joining;
- status polls: every `poll_interval_s` (0.5 s) a StatusPoll to each member
  hosting hubs that has none in flight, and the controller's own status
  (PollLocal), so a figure in the member list is at most ~1 s old;
- VPN logins (`place_login`, SoftEther's redirect flow): the listener
  authenticated the user against the controller's hubs; the core chooses
  the server (placement: selection by points with fresh load, dynamic hubs
  started where needed); the controller keeps the session itself, or the
  chosen member is asked to store a one-time ticket (CreateTicket) and only
  its acknowledgement makes the outcome a redirect to it; a member that
  refuses or is silent for `ticket_ack_timeout_s` (1 s) is skipped for the
  next-best server, so a login never hangs on a dying member;
- configuration sync: every change of the cluster hubs goes to placement
  (static hubs run on every server from the pushed config, so placement
  only lists them; dynamic instances are placed by sessions) and to
  ConfigSync (controller/config_sync.py), which decides what each member
  gets: one delta per change, a chunked full sync for a member behind or
  new, at most one push in flight per member, failures retried and shown
  in the member's `sync_status`;
- graceful drain (controller/drain.py, orders in the configuration): a
  draining member is skipped by placement, its sessions are listed
  (EnumSessions) and disconnected (DeleteSession) at the order's rate, and
  their clients reconnect through the controller to other servers;
- endpoint checks: after a (re)join whose public IP, ports or certificate
  differ from what was last checked, a CheckEndpoint (the caller opens TLS
  to it and compares the certificate) answered with `endpoint_checked`; the
  member gets no sessions until its endpoint is OK (registry `_unavailable`:
  "endpoint not verified" / "endpoint failed: <reason>"). A failed endpoint is
  checked again every ENDPOINT_RECHECK_S (30 s) while the member is joined, so
  a fixed firewall brings it back without a rejoin; a log line only when the
  verdict changes. SoftEther checks nothing and redirects clients to a wrong
  public IP in a loop (upstream issue #1803);
- arrivals (controller/arrivals.py): a client that comes back soon after a
  redirect is sent to another server than the one it came back from, and a
  member whose tickets stay unredeemed while clients are sent to it is
  taken out of load balancing until its endpoint answers a check again
  (a member whose clients' path is cut while its cluster link is up).

Replies and the actions a `receive` queued are ordered: the caller sends
the reply first, then carries out the actions (a JoinAccepted must reach
the member before the configuration that follows it; a Leave's Ack before its
route is forgotten).

Peers are raw 32-byte CURVE keys (the bus's ZAP User-Id). Failed requests
raise ControllerError subclasses; the node maps each to SoftEther's error
number in one table (node/cluster/errors_map.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from controller import messages as msg
from controller.config_sync import ConfigSync, SyncStatus
from controller.core_io import (
    Action, CheckEndpoint, ClusterConfig, ClusterEvent, Forget, KeepLocal, LoginFailed, LoginOutcome, LoginPlaced,
    LoginRequest, Log, PollLocal, RedirectTo, Request, Send, SetLocalInstance,
)
from controller.arrivals import Arrivals, ClientKey, client_key
from controller.drain import DrainView, Drains
from controller.errors import AuthFailed, ControllerError, HubUnknown, InvalidReport, MemberUnknown, NoEligibleServer
from controller.join_desk import JoinDesk, JoinThrottled
from controller.joinauth import ControllerJoinAuth
from controller.member_life import HOSTS_HUBS, MemberState
from controller.placement import Action as PlacementAction
from controller.placement import CreateHubInstance, Placement, PlacementDecision
from controller.tickets import new_ticket
from controller.registry import (
    EMPTY_SKIP, ME_ID, Endpoint, EndpointState, HubInstance, JoinInfo, Member, MemberEvicted, MemberJoined,
    MemberLeft, MemberRejoined, MemberStatus, Registry, hub_key,
)
from vpnbus.auth_backoff import AuthBackoff

POLL_INTERVAL_S: Final = 0.5
POLL_TIMEOUT_S: Final = 1.0
PUSH_TIMEOUT_S: Final = 5.0
REJOIN_GRACE_S: Final = 1.5
TICKET_ACK_TIMEOUT_S: Final = 1.0
"""A member that has not stored a ticket by then is skipped for the next-best server."""
MAX_LOGINS_IN_FLIGHT: Final = 4096
MAX_SERVER_CERT_BYTES: Final = 16 * 1024
"""A hello is kept until its proof comes (256 at most): strangers must not park a 1 MiB frame each."""
MAX_REJOIN_CHECKS: Final = 1024
ENDPOINT_RECHECK_S: Final = 30.0
"""How often a member whose endpoint failed is checked again."""
DYNAMIC_HUB_TYPE: Final = 2
"""SoftEther's HUB_TYPE_FARM_DYNAMIC (1 is static): the hub_type of HubConfig."""


class NotJoined(ControllerError):
    """A peer that has not joined (or was evicted) sent a member request.
    The caller refuses it (ACCESS_DENIED); the core also tells it to Rejoin."""


class JoinRefused(AuthFailed):
    """A join was refused; the text says why (already logged by the core)."""


@dataclass(frozen=True, slots=True)
class _Poll:
    member_id: int


@dataclass(frozen=True, slots=True)
class _Push:
    member_id: int
    generation: int


@dataclass(frozen=True, slots=True)
class _TicketAck:
    login_id: int


@dataclass(frozen=True, slots=True)
class _DrainList:
    key: bytes
    hub: str


@dataclass(frozen=True, slots=True)
class _DrainDisconnect:
    key: bytes


_Pending = _Poll | _Push | _TicketAck | _DrainList | _DrainDisconnect


@dataclass(slots=True)
class _Login:
    request: LoginRequest
    skip: dict[int, str]
    """Servers that did not acknowledge its ticket: why."""
    client: ClientKey | None = None
    avoid: int | None = None
    """The member this client came back from, if another server may take it."""
    redirect: RedirectTo | None = None
    """The ticket in flight."""


def printable(text: str) -> str:
    """A peer-chosen name safe for one log line (no forged lines)."""
    return text if text.isprintable() else repr(text)


class ControllerCore:
    """One cluster's controller. `now` is monotonic seconds, always passed in."""

    def __init__(self, *, key: bytes, info: JoinInfo, config: ClusterConfig, now: float,
                 liveness_timeout_s: float = 3.0, poll_interval_s: float = POLL_INTERVAL_S,
                 poll_timeout_s: float = POLL_TIMEOUT_S, push_timeout_s: float = PUSH_TIMEOUT_S,
                 rejoin_grace_s: float = REJOIN_GRACE_S, ticket_ack_timeout_s: float = TICKET_ACK_TIMEOUT_S,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.key = key
        self.hostname = info.hostname
        self.poll_interval_s = poll_interval_s
        self.poll_timeout_s = poll_timeout_s
        self.push_timeout_s = push_timeout_s
        self.rejoin_grace_s = rejoin_grace_s
        self.ticket_ack_timeout_s = ticket_ack_timeout_s
        self._random_bytes = random_bytes
        self.registry = Registry(key, info, now, liveness_timeout_s=liveness_timeout_s,
                                 suspect_after_s=liveness_timeout_s * 2 / 3)
        self.placement = Placement(self.registry, controller_only=config.controller_only)
        self.desk = JoinDesk()
        self.join_backoff = AuthBackoff()
        """Failed joins per source address (the desk's limit is per CURVE key,
        and a stranger gets a fresh key per attempt for free)."""
        self._config = config
        self.sync = ConfigSync(config.hubs, config.serial)
        self._actions: list[Action] = []
        self._pending: dict[int, _Pending] = {}
        self._logins: dict[int, _Login] = {}
        self._next_login = 1
        self._session_counters: dict[str, int] = {}
        self._polling: set[int] = set()
        self._next_token = 1
        self._next_poll_at = now
        self._rejoin_checks: dict[bytes, float] = {}
        self._endpoint_checking: dict[int, Endpoint] = {}
        """Member id → the endpoint of the CheckEndpoint in flight."""
        self._endpoint_recheck_at: dict[int, float] = {}
        """Member id → when its failed endpoint is checked again."""
        self.arrivals = Arrivals()
        self.drains = Drains()
        self._sync_hubs()
        self._configure_drains(now)

    # ----- inputs: configuration ------------------------------------------------

    def configure(self, config: ClusterConfig, now: float) -> None:
        """The configuration changed: re-sync placement, push it to every member."""
        self._config = config
        self.placement.controller_only = config.controller_only
        self._sync_hubs()
        self._configure_drains(now)
        if self.sync.configure(config.hubs, config.serial):
            self._push_config(now)

    # ----- inputs: the bus ----------------------------------------------------------

    def receive(self, peer: bytes, address: str, message: object, now: float) -> object | None:
        """A message from `peer` (its CURVE key), whose link comes from
        `address`. Returns the reply (None: nothing to reply).

        Raises JoinThrottled, AuthFailed, InvalidReport (refused joins) or
        NotJoined (a member request from a peer that is not joined).
        """
        if isinstance(message, msg.JoinHello):
            return self._join_hello(peer, address, message, now)
        if isinstance(message, msg.JoinProof):
            return self._join_proof(peer, address, message, now)
        member = self._joined(peer)
        if isinstance(message, msg.JoinAbort):
            info = self.desk.abort(peer, now)
            if info is not None:
                self.join_backoff.failed(address, now)
            host = info.hostname if info else "?"
            if member is not None:  # it found the proof in our JoinAccepted wrong: it trusts nothing from us
                host = member.hostname
                self._leave(member, "it refused our proof")
            self._refusal(peer, address, host, "password proofs do not match (the member refused ours: "
                          f"{message.reason[:200]!r})", now)
            return msg.Ack()
        if member is None:
            self._actions.append(Send(peer, msg.Rejoin(reason="not joined")))
            raise NotJoined("not joined: join first")
        self.registry.heard(member.member_id, now)
        if isinstance(message, msg.Leave):
            self._leave(member, repr(message.reason[:200]))
            return msg.Ack()
        return None  # nothing else is a member-to-controller request yet

    def peer_seen(self, peer: bytes, now: float) -> None:
        """The bus saw `peer` (newly, or again after silence)."""
        if self._joined(peer) is None and peer not in self._rejoin_checks \
                and len(self._rejoin_checks) < MAX_REJOIN_CHECKS:
            # A member that thinks it is joined (controller restarted, it was
            # evicted) only heartbeats; tell it to rejoin unless it is joining.
            self._rejoin_checks[peer] = now + self.rejoin_grace_s

    def peer_gone(self, peer: bytes, now: float) -> None:
        """The bus found `peer`'s connection closed."""
        member = self.registry.by_key(peer)
        if member is not None and not member.is_me:
            self.registry.disconnected(member.member_id, now)
            self._events()

    def reply_received(self, token: int, reply: object, now: float) -> None:
        """The reply to Request `token` arrived."""
        pending = self._pending.pop(token, None)
        if isinstance(pending, _TicketAck):
            if isinstance(reply, msg.TicketCreated):
                self._ticket_stored(pending.login_id, now)
            else:
                self._ticket_refused(pending.login_id, f"answered {type(reply).__name__}", now)
        elif isinstance(pending, _Poll):
            self._polling.discard(pending.member_id)
            if isinstance(reply, msg.StatusReport):
                self._status_reported(pending.member_id, reply, now)
        elif isinstance(pending, _DrainList):
            if isinstance(reply, msg.SessionList):
                self.drains.listed(pending.key, pending.hub, reply.sessions, now)
            else:
                self.drains.list_failed(pending.key, pending.hub)
        elif isinstance(pending, _DrainDisconnect):
            self.drains.disconnected(pending.key)
        elif isinstance(pending, _Push):
            self.sync.acknowledged(pending.member_id, pending.generation, reply, now)
            self._push_config(now)

    def request_failed(self, token: int, reason: str, now: float) -> None:
        """Request `token` failed (timeout, refusal, unreachable, unsendable)."""
        pending = self._pending.pop(token, None)
        if isinstance(pending, _TicketAck):
            self._ticket_refused(pending.login_id, reason, now)
        elif isinstance(pending, _Poll):
            self._polling.discard(pending.member_id)  # liveness decides; one lost poll is no verdict
        elif isinstance(pending, _Push):
            self.sync.failed(pending.member_id, pending.generation, reason, now)
            self._push_config(now)
        elif isinstance(pending, _DrainList):
            self.drains.list_failed(pending.key, pending.hub)
        elif isinstance(pending, _DrainDisconnect):
            self.drains.disconnected(pending.key)  # not found: already gone; else the next listing asks again

    # ----- inputs: this node -----------------------------------------------------------

    def local_status(self, status: MemberStatus, now: float) -> None:
        """The controller's own figures (answer to PollLocal)."""
        self.registry.update_me(status, now)
        self._perform(self.placement.status_reported(ME_ID, now))
        self._events()

    def place_session(self, hub: str, now: float, *, admin: bool = False,
                      skip: Mapping[int, str] = EMPTY_SKIP) -> PlacementDecision:
        """Choose the server for a new session to `hub` (none of `skip`),
        start a dynamic hub where needed, and count the session as load on
        the chosen server. Raises HubUnknown or NoEligibleServer."""
        draining = self.drains.skip({m.public_key: m.member_id for m in self.registry.members()})
        decision = self.placement.place_session(hub, now, admin=admin, skip={**draining, **skip} if draining else skip)
        self._perform(list(decision.actions))
        self.registry.note_redirect(decision.member_id, now)
        return decision

    def place_login(self, login: LoginRequest, now: float) -> int:
        """Place an authenticated VPN login (SoftEther's redirect flow, §5.1):
        choose the server; the controller itself keeps it; a member is asked
        to store a one-time ticket, and only once it acknowledged is the
        outcome a redirect to it. A member that refuses or does not answer
        within `ticket_ack_timeout_s` is skipped for the next-best server.
        Returns the login's id; its outcome comes as a LoginPlaced action
        (at once, or when the ticket is acknowledged)."""
        login_id, self._next_login = self._next_login, self._next_login + 1
        if len(self._logins) >= MAX_LOGINS_IN_FLIGHT:
            self._actions.append(LoginPlaced(login_id, LoginFailed(error=NoEligibleServer(
                "too many logins waiting for a member's ticket acknowledgement"))))
            return login_id
        client = client_key(login.client_ip, login.unique_id, login.user_name)
        avoid = self.arrivals.came_back_from(client, now)
        if avoid is not None and (login.admin or self._is_dynamic(login.hub)):
            avoid = None   # admins stay here; a dynamic hub is not split for one client
        self._logins[login_id] = _Login(request=login, skip={}, client=client, avoid=avoid)
        self._place_login(login_id, now)
        return login_id

    def endpoint_checked(self, member_id: int, ok: bool, reason: str, now: float) -> None:
        """The outcome of CheckEndpoint for `member_id`: `ok`, or why not."""
        asked = self._endpoint_checking.pop(member_id, None)
        try:
            m = self.registry.get(member_id)
        except MemberUnknown:
            return
        if asked is None or asked != m.endpoint or m.is_me:
            return  # not asked, or about an endpoint it no longer has
        was = m.endpoint_state
        changed = self.registry.endpoint_checked(member_id, ok, reason)
        if ok:
            self._endpoint_recheck_at.pop(member_id, None)
        else:
            self._endpoint_recheck_at[member_id] = now + ENDPOINT_RECHECK_S
        if not changed:
            return
        where = f"{m.public_ip} port {','.join(map(str, m.public_ports))}"
        who = f"member {printable(m.hostname)} (id {member_id})"
        if ok:
            again = " again: back in load balancing" if was in (EndpointState.FAILED, EndpointState.SUSPECT) else ""
            self._log(logging.INFO, f"{who}: public endpoint {where} verified{again}")
        else:
            self._log(logging.WARNING, f"{who}: public endpoint {where} failed: {printable(reason)}; no sessions "
                      f"until it answers (checked again every {ENDPOINT_RECHECK_S:g} s)")

    # ----- time -----------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        self.registry.handle_timer(now)
        self.placement.handle_timer(now)
        self.desk.handle_timer(now)
        self._events()
        for peer, due in list(self._rejoin_checks.items()):
            if now >= due:
                del self._rejoin_checks[peer]
                if self._joined(peer) is None and not self.desk.in_progress(peer, now):
                    self._actions.append(Send(peer, msg.Rejoin(
                        reason="not joined (evicted or unknown to this controller)")))
        if now >= self._next_poll_at:
            self._next_poll_at = max(self._next_poll_at + self.poll_interval_s, now)
            self._poll_round()
        self._endpoint_rechecks(now)
        self._drain_moves(now)
        self._push_config(now)

    def next_deadline(self) -> float:
        times = [self._next_poll_at, *self._rejoin_checks.values(), *self._endpoint_recheck_at.values()]
        for core in (self.registry, self.placement, self.drains, self.sync):
            deadline = core.next_deadline()
            if deadline is not None:
                times.append(deadline)
        return min(times)

    # ----- outputs and views ---------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    def listed_members(self, now: float) -> list[Member]:
        """The controller, then members now in load balancing (not silent for the liveness timeout)."""
        return self.registry.listed(now)

    def drain_view(self, member_id: int) -> DrainView | None:
        """How the drain of `member_id` goes (None: not drained); raises MemberUnknown."""
        return self.drains.view(self.registry.get(member_id).public_key)

    def sync_status(self, member_id: int) -> SyncStatus:
        """How far `member_id`'s configuration is (the controller's own: always in sync)."""
        return self.sync.status(member_id)

    def member_key(self, member_id: int) -> bytes:
        """The bus key of `member_id`; raises MemberUnknown."""
        return self.registry.get(member_id).public_key

    # ----- join --------------------------------------------------------------------------------

    def _joined(self, peer: bytes) -> Member | None:
        m = self.registry.by_key(peer)
        return m if m is not None and not m.is_me and m.state in HOSTS_HUBS else None

    def _join_hello(self, peer: bytes, address: str, m: msg.JoinHello, now: float) -> msg.JoinChallenge:
        info = JoinInfo(hostname=m.hostname[:255], public_ip=m.public_ip or address,
                        public_ports=tuple(m.public_ports[:129]), weight=m.weight,
                        max_sessions=m.max_sessions, server_cert=m.server_cert)
        auth = ControllerJoinAuth(self._config.password_hash, self.key, peer)
        try:
            if m.version != msg.PROTOCOL_VERSION:
                raise AuthFailed(f"protocol version {m.version}, this controller speaks {msg.PROTOCOL_VERSION}")
            if len(m.server_cert) > MAX_SERVER_CERT_BYTES:
                raise AuthFailed(f"server certificate of {len(m.server_cert)} bytes (at most {MAX_SERVER_CERT_BYTES})")
            wait = self.join_backoff.wait(address, now)
            if wait > 0:
                raise JoinThrottled(f"too many failed joins from {address}: retry in {wait:.1f} s")
            nonce_c = self.desk.hello(peer, auth, info, m.nonce, now)
        except AuthFailed as exc:
            self.join_backoff.failed(address, now)   # the desk logs it (in summary)
            self._refusal(peer, address, info.hostname, str(exc), now)
            raise
        return msg.JoinChallenge(nonce=nonce_c)

    def _join_proof(self, peer: bytes, address: str, m: msg.JoinProof, now: float) -> msg.JoinAccepted:
        announced = self.desk.pending_info(peer)
        try:
            info, proof_c = self.desk.proof(peer, m.proof, now)
        except AuthFailed as exc:
            self.join_backoff.failed(address, now)
            self._refusal(peer, address, announced.hostname if announced else "?",
                          f"password proofs do not match ({exc})", now)
            raise JoinRefused("wrong password") from None
        self.join_backoff.succeeded(address)
        try:
            member_id = self.registry.link_opened(peer, now)
            self.registry.joined(member_id, info, now)
        except (InvalidReport, MemberUnknown) as exc:
            self._refusal(peer, address, info.hostname, f"invalid join information: {exc}", now)
            self._events()
            raise InvalidReport(str(exc)) from None
        self._rejoin_checks.pop(peer, None)
        self._log(logging.INFO, f"member {printable(info.hostname)} ({_short(peer)}) from {address} joined as id "
                  f"{member_id} (weight {info.weight}, ports {','.join(map(str, info.public_ports))})")
        self._events()
        self.sync.joined(member_id)
        self._push_config(now)  # after the reply (see the module docstring)
        self._poll(self.registry.get(member_id))  # its first status makes it selectable: ask now
        self._endpoint_joined(self.registry.get(member_id), now)
        return msg.JoinAccepted(member_id=member_id, controller_hostname=self.hostname, proof=proof_c)

    def _refusal(self, peer: bytes, address: str, host: str, why: str, now: float) -> None:
        skipped = self.desk.refusal(peer, now)
        if skipped is None:
            return
        more = f" ({skipped} more refusals not logged)" if skipped else ""
        self._log(logging.WARNING, f"member {printable(host)} ({_short(peer)}) from {address}: "
                  f"join refused: {why}{more}")

    def _leave(self, member: Member, why: str) -> None:
        self._log(logging.INFO, f"member {printable(member.hostname)} (id {member.member_id}) leaves the "
                  f"cluster: {why}")
        if member.state is not MemberState.DRAINING:  # a second Leave/JoinAbort: already out
            self.registry.drain(member.member_id)
        self._actions.append(Forget(member.public_key))
        self._events()

    # ----- logins ---------------------------------------------------------------------------------

    def _place_login(self, login_id: int, now: float) -> None:
        login = self._logins[login_id]
        request = login.request
        try:
            decision = self.place_session(request.hub, now, admin=request.admin, skip=self._login_skip(login, now))
        except NoEligibleServer as exc:
            if login.avoid is not None:  # the member it came back from is the only one left: try it
                login.avoid = None
                self._place_login(login_id, now)
                return
            self._login_decided(login_id, LoginFailed(error=exc))
            return
        except ControllerError as exc:  # HubUnknown
            self._login_decided(login_id, LoginFailed(error=exc))
            return
        if decision.member_id == ME_ID:
            self._login_decided(login_id, KeepLocal(session_name=self._session_name(decision.hub, request.user_name)))
            return
        member = self.registry.get(decision.member_id)  # its endpoint is verified (an IPv4 address)
        ticket = new_ticket(self._random_bytes)
        session_name = self._session_name(decision.hub, request.user_name)
        login.redirect = RedirectTo(member_id=member.member_id, ip=member.public_ip, ports=member.public_ports,
                                    ticket=ticket, cert=member.server_cert, session_name=session_name)
        create = msg.CreateTicket(hub=decision.hub, ticket=ticket, user_name=request.user_name,
                                  real_user_name=request.real_user_name, group=request.group,
                                  session_name=session_name, policy={})
        self._request(member.public_key, create, self.ticket_ack_timeout_s, _TicketAck(login_id))

    def _is_dynamic(self, hub: str) -> bool:
        try:
            return self.placement.is_dynamic(hub)
        except HubUnknown:
            return False   # placing it fails with HubUnknown

    def _login_skip(self, login: _Login, now: float) -> Mapping[int, str]:
        """The servers this login may not go to: those that refused its
        ticket, and for a static hub the member it was just sent to if it
        comes back from there (controller/arrivals.py)."""
        if login.avoid is None:
            return login.skip
        return {**login.skip, login.avoid: "the client came back from it just now"}

    def _ticket_stored(self, login_id: int, now: float) -> None:
        login = self._logins.get(login_id)
        if login is not None and login.redirect is not None:
            self.arrivals.redirected(login.client, login.redirect.member_id, now)
            self._login_decided(login_id, login.redirect)

    def _ticket_refused(self, login_id: int, reason: str, now: float) -> None:
        login = self._logins.get(login_id)
        if login is None or login.redirect is None:
            return
        member_id = login.redirect.member_id
        login.skip[member_id] = f"did not store the ticket: {reason}"
        login.redirect = None
        self._log(logging.INFO, f"member {member_id} did not store a ticket for hub {login.request.hub} "
                  f"({reason}): trying the next server")
        self._place_login(login_id, now)

    def _login_decided(self, login_id: int, outcome: LoginOutcome) -> None:
        self._logins.pop(login_id, None)
        self._actions.append(LoginPlaced(login_id, outcome))

    def _session_name(self, hub: str, user_name: str) -> str:
        """SoftEther's SessionName: SID-<USER>-<n>, n counting this hub's placed logins (hub->SessionCounter)."""
        n = self._session_counters[hub_key(hub)] = self._session_counters.get(hub_key(hub), 0) + 1
        return f"SID-{user_name.upper()}-{n}"

    # ----- endpoint checks ------------------------------------------------------------------------

    def _endpoint_joined(self, m: Member, now: float) -> None:
        """After a (re)join: check a new endpoint; a failed one keeps its recheck."""
        if m.endpoint_state is EndpointState.FAILED:  # same endpoint as the failed check (registry.joined)
            self._endpoint_recheck_at.setdefault(m.member_id, now + ENDPOINT_RECHECK_S)
        elif m.endpoint_state is EndpointState.UNCHECKED and self._endpoint_checking.get(m.member_id) != m.endpoint:
            self._endpoint_recheck_at.pop(m.member_id, None)
            self._check_endpoint(m)

    def _endpoint_rechecks(self, now: float) -> None:
        for member_id, due in list(self._endpoint_recheck_at.items()):
            if now < due:
                continue
            del self._endpoint_recheck_at[member_id]  # a member away gets it again when it rejoins
            try:
                m = self.registry.get(member_id)
            except MemberUnknown:
                continue
            if self._joined(m.public_key) is m and m.endpoint_state is EndpointState.FAILED \
                    and member_id not in self._endpoint_checking:
                self._check_endpoint(m)

    def _suspect_endpoint(self, m: Member, unredeemed: int) -> None:
        """Clients sent to `m` are not arriving (controller/arrivals.py): no
        more until its endpoint answers a check again."""
        if m.member_id in self._endpoint_checking or not self.registry.endpoint_suspect(m.member_id):
            return
        self._log(logging.WARNING, f"member {printable(m.hostname)} (id {m.member_id}): {unredeemed} redirected "
                  f"client(s) have not arrived for {self.arrivals.unredeemed_s:g} s: no sessions until its public "
                  f"endpoint answers a check again")
        self._check_endpoint(m)

    def _check_endpoint(self, m: Member) -> None:
        self._endpoint_checking[m.member_id] = m.endpoint
        self._actions.append(CheckEndpoint(m.member_id, m.public_ip, m.public_ports, m.server_cert))

    # ----- registry events, placement actions, polls, pushes -------------------------------------

    def _events(self) -> None:
        for ev in self.registry.events():
            self._actions.append(ClusterEvent(ev))
            if isinstance(ev, (MemberJoined, MemberRejoined)):
                self.placement.member_joined(ev.member_id)
            elif isinstance(ev, (MemberEvicted, MemberLeft)):
                self.placement.member_gone(ev.member_id)
                self.arrivals.forget_member(ev.member_id)
                self._drain_member_away(ev.member_id)
                self.sync.left(ev.member_id)
                if isinstance(ev, MemberEvicted):
                    self._evicted(ev)

    def _evicted(self, ev: MemberEvicted) -> None:
        try:
            m = self.registry.get(ev.member_id)
        except MemberUnknown:
            return
        self._polling.discard(m.member_id)
        why = "closed its connection" if ev.disconnected else f"silent for {ev.silent_for_s:.1f} s"
        self._log(logging.WARNING, f"member {printable(m.hostname)} (id {ev.member_id}) {why}: "
                  f"out of load balancing (hubs: {', '.join(ev.hubs) or 'none'})")
        # Sent in case it still listens (a connection reset under a live member).
        self._actions.append(Send(m.public_key, msg.Rejoin(reason=f"evicted: {why}")))
        self._actions.append(Forget(m.public_key))

    def _perform(self, actions: list[PlacementAction]) -> None:
        """Placement's actions (dynamic hub instances) as messages or local changes."""
        for a in actions:
            create = isinstance(a, CreateHubInstance)
            if a.member_id == ME_ID:
                self._actions.append(SetLocalInstance(a.hub, running=create))
                continue
            try:
                peer = self.registry.get(a.member_id).public_key
            except MemberUnknown:
                continue
            message = msg.CreateHubInstance(hub=a.hub) if isinstance(a, CreateHubInstance) \
                else msg.DeleteHubInstance(hub=a.hub, reason=a.reason)
            self._actions.append(Send(peer, message))

    def _sync_hubs(self) -> None:
        self._perform(self.placement.sync_hubs({h.name: h.hub_type == DYNAMIC_HUB_TYPE for h in self._config.hubs}))

    def _poll_round(self) -> None:
        self._actions.append(PollLocal())
        for m in self.registry.members():
            if not m.is_me and m.state in HOSTS_HUBS:
                self._poll(m)

    def _poll(self, m: Member) -> None:
        if m.member_id not in self._polling:
            self._polling.add(m.member_id)
            self._request(m.public_key, msg.StatusPoll(), self.poll_timeout_s, _Poll(m.member_id))

    def _status_reported(self, member_id: int, report: msg.StatusReport, now: float) -> None:
        status = MemberStatus(points=report.points, sessions=report.sessions, tcp_connections=report.tcp_connections,
                              hubs=tuple(HubInstance(name=h.name, dynamic=h.dynamic, sessions=h.sessions,
                                                      mac_entries=h.mac_entries, ip_entries=h.ip_entries)
                                         for h in report.hubs),
                              tickets_outstanding=report.tickets_outstanding)
        try:
            self.registry.status_reported(member_id, status, now)
            self._perform(self.placement.status_reported(member_id, now))
            if self.arrivals.tickets_reported(member_id, status.tickets_outstanding, now):
                self._suspect_endpoint(self.registry.get(member_id), status.tickets_outstanding)
            self._drain_status(self.registry.get(member_id), now)
        except (InvalidReport, MemberUnknown) as exc:
            self._log(logging.INFO, f"status report of member {member_id} ignored: {exc}")
        except ControllerError as exc:
            self._log(logging.WARNING, f"status report of member {member_id}: {exc}")
        self._events()

    # ----- graceful drain ------------------------------------------------------------------------

    def _configure_drains(self, now: float) -> None:
        started, ended = self.drains.configure(self._config.drains, now)
        for key, what in [(k, "draining: no new sessions; its sessions move away") for k in started] \
                + [(k, "undrained: takes sessions again") for k in ended]:
            m = self.registry.by_key(key)
            who = f"member {printable(m.hostname)} (id {m.member_id})" if m else f"member {_short(key)} (not joined)"
            self._log(logging.INFO, f"{who} {what}")

    def _drain_status(self, m: Member, now: float) -> None:
        hubs = {key: (h.name, h.sessions) for key, h in m.hubs.items()}
        lists, changed = self.drains.status_reported(m.public_key, hubs, m.tickets_outstanding, now)
        for ask in lists:
            self._request(m.public_key, msg.EnumSessions(hub=ask.hub), self.push_timeout_s,
                          _DrainList(ask.key, ask.hub))
        if changed is not None:
            view = self.drains.view(m.public_key)
            moved = f" ({view.moved} sessions moved)" if view else ""
            self._log(logging.INFO, f"member {printable(m.hostname)} (id {m.member_id}) {changed.value}{moved}")

    def _drain_moves(self, now: float) -> None:
        live = {m.public_key for m in self.registry.members() if not m.is_me and m.state in HOSTS_HUBS}
        for move in self.drains.due(now, live):
            self._request(move.key, msg.DeleteSession(hub=move.hub, name=move.name), self.push_timeout_s,
                          _DrainDisconnect(move.key))

    def _drain_member_away(self, member_id: int) -> None:
        try:
            self.drains.member_away(self.registry.get(member_id).public_key)
        except MemberUnknown:
            pass

    def _push_config(self, now: float) -> None:
        """What ConfigSync sends now, as requests; its notes as log lines."""
        for push in self.sync.take_pushes(now):
            try:
                peer = self.registry.get(push.member_id).public_key
            except MemberUnknown:
                self.sync.left(push.member_id)
                continue
            self._request(peer, push.message, self.push_timeout_s, _Push(push.member_id, push.generation))
        for note in self.sync.take_notes():
            self._log(logging.WARNING, note)

    def _request(self, peer: bytes, message: object, timeout_s: float, pending: _Pending) -> None:
        token, self._next_token = self._next_token, self._next_token + 1
        self._pending[token] = pending
        self._actions.append(Request(token, peer, message, timeout_s))

    def _log(self, level: int, text: str) -> None:
        self._actions.append(Log(level, text))


def _short(peer: bytes) -> str:
    """The first characters of a key as the bus shows it (z85 of 4 bytes = 5 characters)."""
    return peer[:4].hex()
