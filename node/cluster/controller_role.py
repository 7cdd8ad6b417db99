"""The controller role: the asyncio edge around the controller cores.

What it runs (CLUSTER.md decisions 1-5):
- one vpnbus ROUTER (`BusServer`, any CURVE key may connect: the join
  authenticates) on the host of the first listener and `Farm.bus_port`
  (0 = a free port, then saved so it is stable across restarts), with the
  node keypair STATE_DIR/bus/node;
- `GET /vpncluster/bus` on the HTTPS listener: where the bus is and which
  key it has (unauthenticated: it only says where and who);
- joins through controller/core.JoinDesk + joinauth with the CURRENT admin
  password hash (SetServerPassword changes it; each join reads it);
- controller/registry.Registry + controller/placement.Placement, wired as
  tests/unit/controller/simcluster.py does; the controller's own entry is
  refreshed from its live session count at every poll;
- a StatusPoll of every joined member, concurrently, every `POLL_INTERVAL_S`
  (0.5 s), so a figure in EnumFarmMember is at most ~1 s old;
- liveness: a member not heard for `liveness_timeout_s` (3 s; environment
  variable VPNCLUSTER_LIVENESS_S overrides it, for tests and benches) is
  out of load balancing and of the member list at once (checked at read
  time, not only at the 0.1 s tick);
- PushConfig of every cluster hub (types 1 and 2, with users) right after a
  join and after every config change (NodeState.watch);
- Rejoin to an evicted or unknown key that talks as if it were joined.

Dynamic hub actions from placement go to members as CreateHubInstance /
DeleteHubInstance; when placed on the controller itself they change
`server.dynamic_instances` and the data plane re-applies placement. Static
hubs need no action: every server runs them from its config (hosted_hubs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from controller import messages as msg
from controller.core import HubBook, JoinDesk, JoinThrottled
from controller.errors import AuthFailed, ControllerError, InvalidReport, MemberUnknown
from controller.joinauth import ControllerJoinAuth
from controller.member_life import HOSTS_HUBS, MemberState
from controller.placement import Action, CreateHubInstance, DeleteHubInstance, Placement
from controller.registry import (
    ME_ID, HubInstance, JoinInfo, Member, MemberEvicted, MemberJoined, MemberLeft, MemberRejoined, MemberStatus,
    Registry,
)
from controller.points import DEFAULT_WEIGHT, points
from node.cluster.controller_bus import (
    bind_router, bus_host, cluster_hubs, hub_configs, key_bytes, key_text, liveness_from_env, node_keys,
)
from node.cluster.member_discovery import DISCOVERY_VERSION, PATH as DISCOVERY_PATH
from node.softether.errors import Err
from node.state import model
from vpnbus import keys as bus_keys
from vpnbus.endpoint import RequestFailed
from vpnbus.requests import PeerSeen
from vpnbus.server import BusServer
from vpnbus.sockets import BusError

log = logging.getLogger("vpnd.cluster")

POLL_INTERVAL_S = 0.5
POLL_TIMEOUT_S = 1.0
TICK_S = 0.1
PUSH_TIMEOUT_S = 5.0
REJOIN_GRACE_S = 1.5
MAX_SERVER_CERT_BYTES = 16 * 1024
"""A hello is kept until its proof comes (256 at most): strangers must not park a 1 MiB frame each."""
MAX_REJOIN_CHECKS = 1024


class ControllerRole:
    def __init__(self, server: Any, listener: Any, *, liveness_timeout_s: float | None = None) -> None:
        self.server = server
        self.listener = listener
        self.liveness_timeout_s = liveness_timeout_s or liveness_from_env()
        self.desk = JoinDesk()
        self.registry: Registry | None = None
        self.placement: Placement | None = None
        self.hub_book: HubBook | None = None
        self.bus: BusServer | None = None
        self.bus_port = 0
        self.keys: bus_keys.Keypair | None = None
        self._tasks: set[asyncio.Task] = set()
        self._polling: set[int] = set()
        self._running = False
        self._push_due = asyncio.Event()
        self._rejoin_checks: set[str] = set()

    # ----- life ------------------------------------------------------------

    async def start(self) -> None:
        state = self.server.state
        self.keys = node_keys(self.server.state_dir)
        self.bus = await self._bind(state.config)
        now = time.monotonic()
        self.registry = Registry(key_bytes(self.keys.public), self._my_info(state.config), now,
                                 liveness_timeout_s=self.liveness_timeout_s,
                                 suspect_after_s=self.liveness_timeout_s * 2 / 3)
        self.placement = Placement(self.registry, controller_only=state.config.farm.controller_only)
        self.hub_book = HubBook(self.placement)
        self._running = True
        self._sync_hubs(state.config)
        state.watch(self._on_config)
        self.listener.routes[("GET", DISCOVERY_PATH)] = self._discovery
        for coro in (self._poll_loop(), self._tick_loop(), self._push_loop()):
            self._spawn(coro)
        log.info("cluster controller: bus %s, key %s, liveness %.1f s", self.bus.endpoint, self.keys.public,
                 self.liveness_timeout_s)

    async def stop(self) -> None:
        self._running = False
        self.server.state.unwatch(self._on_config)
        if self.listener.routes.get(("GET", DISCOVERY_PATH)) == self._discovery:
            del self.listener.routes[("GET", DISCOVERY_PATH)]
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()
        if self.server.dynamic_instances:
            self.server.dynamic_instances.clear()
            self.server.refresh_dataplane()
        log.info("cluster controller stopped")

    async def _bind(self, config: model.Server) -> BusServer:
        saved = config.farm.bus_port
        bus = await bind_router(bus_host(config), saved, self.keys, self._handle, self._on_bus_event,
                                self.liveness_timeout_s)
        self.bus_port = int(bus.endpoint.rsplit(":", 1)[1])
        if self.bus_port != saved:
            def save(c: model.Server) -> None:
                c.farm.bus_port = self.bus_port
            self.server.state.change(save)
        return bus

    def _my_info(self, config: model.Server) -> JoinInfo:
        ports = [model.listener_address(text)[1] for text in config.listeners]
        return JoinInfo(hostname=self.server.hostname, public_ip="127.0.0.1", public_ports=tuple(ports[:128]),
                        weight=config.farm.weight or DEFAULT_WEIGHT, server_cert=self.server.cert_der)

    def _spawn(self, coro: Any) -> None:
        if not self._running:  # stop() is under way: a task made now would outlive it
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # stop() gathers with return_exceptions: without this line a bug would vanish.
            log.error("cluster controller task %s failed", task.get_coro().__qualname__,
                      exc_info=task.exception())

    # ----- discovery ------------------------------------------------------------

    def _discovery(self, request: Any, peer: str) -> tuple[int, list[tuple[str, str]], bytes]:
        body = json.dumps({"bus_port": self.bus_port, "controller_key": self.keys.public,
                           "version": DISCOVERY_VERSION})
        return 200, [("Content-Type", "application/json")], body.encode()

    # ----- bus input ----------------------------------------------------------------

    def _joined(self, peer: str) -> Member | None:
        m = self.registry.by_key(key_bytes(peer))
        return m if m is not None and m.state in HOSTS_HUBS else None

    async def _handle(self, peer: str, message: Any) -> Any:
        now = time.monotonic()
        key = key_bytes(peer)
        if isinstance(message, msg.JoinHello):
            return self._join_hello(peer, key, message, now)
        if isinstance(message, msg.JoinProof):
            return self._join_proof(peer, key, message, now)
        member = self._joined(peer)
        if isinstance(message, msg.JoinAbort):
            info = self.desk.abort(key, now)
            host = info.hostname if info else "?"
            if member is not None:  # it found the proof in our JoinAccepted wrong: it trusts nothing from us
                host = member.hostname
                self._leave(peer, member, "it refused our proof")
            self._log_refusal(peer, key, host, "password proofs do not match (the member refused ours: "
                              f"{message.reason[:200]!r})", now)
            return msg.Ack()
        if member is None:
            self._send(peer, msg.Rejoin(reason="not joined"))
            raise RequestFailed(Err.ACCESS_DENIED, "not joined: join first")
        self.registry.heard(member.member_id, now)
        if isinstance(message, msg.Leave):
            self._leave(peer, member, repr(message.reason[:200]))
            return msg.Ack()
        return None  # nothing else is a member-to-controller request yet

    def _leave(self, peer: str, member: Member, why: str) -> None:
        log.info("member %s (id %d) leaves the cluster: %s", member.hostname, member.member_id, why)
        if member.state is not MemberState.DRAINING:  # a second Leave/JoinAbort: already out
            self.registry.drain(member.member_id)
        # After our Ack is sent (forget drops the route the reply needs).
        asyncio.get_running_loop().call_soon(self.bus.forget, peer)
        self._events()

    def _join_hello(self, peer: str, key: bytes, m: msg.JoinHello, now: float) -> msg.JoinChallenge:
        info = JoinInfo(hostname=m.hostname[:255], public_ip=m.public_ip or self._peer_ip(peer),
                        public_ports=tuple(m.public_ports[:129]), weight=m.weight,
                        max_sessions=m.max_sessions, server_cert=m.server_cert)
        password_hash = self.server.state.config.admin_password_hash
        auth = ControllerJoinAuth(password_hash, key_bytes(self.keys.public), key)
        try:
            if m.version != msg.PROTOCOL_VERSION:
                raise AuthFailed(f"protocol version {m.version}, this controller speaks {msg.PROTOCOL_VERSION}")
            if len(m.server_cert) > MAX_SERVER_CERT_BYTES:
                raise AuthFailed(f"server certificate of {len(m.server_cert)} bytes (at most {MAX_SERVER_CERT_BYTES})")
            nonce_c = self.desk.hello(key, auth, info, m.nonce, now)
        except JoinThrottled as exc:
            raise RequestFailed(Err.ACCESS_DENIED, str(exc)) from None
        except AuthFailed as exc:
            self._log_refusal(peer, key, info.hostname, str(exc), now)
            raise RequestFailed(Err.ACCESS_DENIED, str(exc)) from None
        return msg.JoinChallenge(nonce=nonce_c)

    def _join_proof(self, peer: str, key: bytes, m: msg.JoinProof, now: float) -> msg.JoinAccepted:
        announced = self.desk.pending_info(key)
        try:
            info, proof_c = self.desk.proof(key, m.proof, now)
        except AuthFailed as exc:
            self._log_refusal(peer, key, announced.hostname if announced else "?",
                              f"password proofs do not match ({exc})", now)
            raise RequestFailed(Err.ACCESS_DENIED, "wrong password") from None
        try:
            member_id = self.registry.link_opened(key, now)
            self.registry.joined(member_id, info, now)
        except (InvalidReport, MemberUnknown) as exc:
            self._log_refusal(peer, key, info.hostname, f"invalid join information: {exc}", now)
            self._events()
            raise RequestFailed(Err.INVALID_PARAMETER, str(exc)) from None
        log.info("member %s (%s) from %s joined as id %d (weight %d, ports %s)", info.hostname, peer[:8],
                 self._peer_ip(peer), member_id, info.weight, ",".join(map(str, info.public_ports)))
        self._events()
        # Runs after this handler's reply is sent: the member sees JoinAccepted first.
        self._spawn(self._push_to(peer))
        return msg.JoinAccepted(member_id=member_id, controller_hostname=self.server.hostname, proof=proof_c)

    def _log_refusal(self, peer: str, key: bytes, host: str, why: str, now: float) -> None:
        skipped = self.desk.refusal(key, now)
        if skipped is None:
            return
        more = f" ({skipped} more refusals not logged)" if skipped else ""
        host = host if host.isprintable() else repr(host)  # an unproven peer chose it: no forged log lines
        log.warning("member %s (%s) from %s: join refused: %s%s", host, peer[:8], self._peer_ip(peer), why, more)

    def _peer_ip(self, peer: str) -> str:
        return (self.bus.peer_address(peer) or "") if self.bus else ""

    def _on_bus_event(self, event: Any) -> None:
        if isinstance(event, PeerSeen) and self._running and self._joined(event.peer) is None \
                and event.peer not in self._rejoin_checks and len(self._rejoin_checks) < MAX_REJOIN_CHECKS:
            # A member that thinks it is joined (controller restarted, it was
            # evicted) only heartbeats; tell it to rejoin unless it is joining.
            self._rejoin_checks.add(event.peer)
            self._spawn(self._rejoin_later(event.peer))

    async def _rejoin_later(self, peer: str) -> None:
        try:
            await asyncio.sleep(REJOIN_GRACE_S)
        finally:
            self._rejoin_checks.discard(peer)
        key = key_bytes(peer)
        if self._joined(peer) is None and not self.desk.in_progress(key, time.monotonic()) \
                and peer in self.bus.peers:
            self._send(peer, msg.Rejoin(reason="not joined (evicted or unknown to this controller)"))

    def _send(self, peer: str, message: Any) -> None:
        try:
            self.bus.notify(peer, message)
        except BusError as exc:
            log.debug("cannot send %s to %s: %s", type(message).__name__, peer[:8], exc)

    # ----- registry events and placement actions ----------------------------------

    def _events(self) -> None:
        for ev in self.registry.events():
            if isinstance(ev, (MemberJoined, MemberRejoined)):
                self.perform(self.placement.member_joined(ev.member_id))
            elif isinstance(ev, (MemberEvicted, MemberLeft)):
                self.placement.member_gone(ev.member_id)
                if isinstance(ev, MemberEvicted):
                    self._evicted(ev)

    def _evicted(self, ev: MemberEvicted) -> None:
        try:
            m = self.registry.get(ev.member_id)
        except MemberUnknown:
            return
        peer = key_text(m.public_key)
        log.warning("member %s (id %d) silent for %.1f s: out of load balancing (hubs: %s)", m.hostname,
                    ev.member_id, ev.silent_for_s, ", ".join(ev.hubs) or "none")
        self._send(peer, msg.Rejoin(reason="evicted: silent too long"))
        self.bus.forget(peer)

    def perform(self, actions: list[Action]) -> None:
        """Carry out placement actions (also for the session code: dynamic hub placement)."""
        refresh = False
        for a in actions:
            dynamic = isinstance(a, DeleteHubInstance) or a.dynamic
            if not dynamic:
                continue  # static hubs run everywhere from the pushed config
            if a.member_id == ME_ID:
                if isinstance(a, CreateHubInstance):
                    self.server.dynamic_instances.add(a.hub.lower())
                else:
                    self.server.dynamic_instances.discard(a.hub.lower())
                refresh = True
                continue
            try:
                peer = key_text(self.registry.get(a.member_id).public_key)
            except MemberUnknown:
                continue
            if isinstance(a, CreateHubInstance):
                self._send(peer, msg.CreateHubInstance(hub=a.hub))
            else:
                self._send(peer, msg.DeleteHubInstance(hub=a.hub, reason=a.reason))
        if refresh:
            self.server.refresh_dataplane()

    async def request(self, member_id: int, message: Any, timeout_s: float = PUSH_TIMEOUT_S) -> Any:
        """Send one request to a member and await its reply (for session and admin code).

        Raises MemberUnknown, or vpnbus BusError subclasses (RequestTimeout,
        RemoteError with a SoftEther code, PeerUnreachable, ...).
        """
        return await self.bus.request(key_text(self.registry.get(member_id).public_key), message,
                                      timeout_s=timeout_s)

    # ----- config ---------------------------------------------------------------------

    def _on_config(self, config: model.Server) -> None:
        if not self._running or config.farm.server_type != model.SERVER_CONTROLLER:
            # SetFarmSetting converted the hubs for another mode and is about to stop
            # this role: pushing that config would empty every member's hubs.
            return
        self.placement.controller_only = config.farm.controller_only
        self._sync_hubs(config)
        self._push_due.set()

    def _sync_hubs(self, config: model.Server) -> None:
        actions, refused = self.hub_book.sync(cluster_hubs(config))
        for text in refused:
            log.warning("hub %s", text)
        self.perform(actions)

    async def _push_loop(self) -> None:
        while True:
            await self._push_due.wait()
            self._push_due.clear()
            peers = [key_text(m.public_key) for m in self.registry.members() if not m.is_me and m.state in HOSTS_HUBS]
            for result in await asyncio.gather(*(self._push_to(p) for p in peers), return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("cluster controller: config push failed", exc_info=result)

    async def _push_to(self, peer: str) -> None:
        config = self.server.state.config
        if config.farm.server_type != model.SERVER_CONTROLLER:
            return  # a mode change is under way (see _on_config)
        try:
            await self.bus.request(peer, msg.PushConfig(serial=config.serial, hubs=hub_configs(config)),
                                   timeout_s=PUSH_TIMEOUT_S)
        except BusError as exc:
            log.info("config push (serial %d) to %s not acknowledged: %s", config.serial, peer[:8], exc)
        except ValueError as exc:  # over the bus's frame limit: every push fails until the config shrinks
            log.error("config push (serial %d) to %s impossible: %s", config.serial, peer[:8], exc)

    # ----- status polls and liveness ------------------------------------------------------

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._guarded("status poll round", self._poll_round)
            await asyncio.sleep(max(0.0, POLL_INTERVAL_S - (loop.time() - started)))

    def _poll_round(self) -> None:
        self._update_me(time.monotonic())
        for m in self.registry.members():
            if not m.is_me and m.state in HOSTS_HUBS and m.member_id not in self._polling:
                self._polling.add(m.member_id)
                self._spawn(self._poll(m.member_id, key_text(m.public_key)))

    @staticmethod
    def _guarded(what: str, step: Any) -> None:
        """One round of a loop; a bug costs that round (logged), never the loop."""
        try:
            step()
        except Exception:
            log.exception("cluster controller: %s failed", what)

    async def _poll(self, member_id: int, peer: str) -> None:
        try:
            report = await self.bus.request(peer, msg.StatusPoll(), timeout_s=POLL_TIMEOUT_S)
        except BusError:
            return  # liveness decides; one lost poll is not a verdict
        finally:
            self._polling.discard(member_id)
        if not isinstance(report, msg.StatusReport):
            return
        now = time.monotonic()
        status = MemberStatus(points=report.points, sessions=report.sessions, tcp_connections=report.tcp_connections,
                              hubs=tuple(HubInstance(name=h.name, dynamic=h.dynamic, sessions=h.sessions)
                                         for h in report.hubs),
                              tickets_outstanding=report.tickets_outstanding)
        try:
            self.registry.status_reported(member_id, status, now)
            self.perform(self.placement.status_reported(member_id, now))
        except (InvalidReport, MemberUnknown) as exc:
            log.info("status report of member %d ignored: %s", member_id, exc)
        except ControllerError as exc:
            log.warning("status report of member %d: %s", member_id, exc)
        self._events()

    def _update_me(self, now: float) -> None:
        config = self.server.state.config
        hubs, sessions = [], 0
        for hub in config.hubs:
            runtime = self.server.hubs.get(hub.name.lower())
            if runtime is not None:
                n = runtime.session_count()
                sessions += n
                hubs.append(HubInstance(name=hub.name, dynamic=hub.hub_type == model.HUB_DYNAMIC, sessions=n))
        status = MemberStatus(points=points(sessions, config.farm.weight), sessions=sessions,
                              tcp_connections=self.server.tcp_connection_count(), hubs=tuple(hubs))
        self.registry.update_me(status, now)
        self.perform(self.placement.status_reported(ME_ID, now))
        self._events()

    async def _tick_loop(self) -> None:
        while True:
            self._guarded("liveness tick", self._tick)
            await asyncio.sleep(TICK_S)

    def _tick(self) -> None:
        now = time.monotonic()
        self.registry.handle_timer(now)
        self.placement.handle_timer(now)
        self.desk.handle_timer(now)
        self._events()

    # ----- views for the admin API ---------------------------------------------------------

    def listed_members(self) -> list[Member]:
        """The controller, then members now in load balancing (not silent for the liveness timeout)."""
        return self.registry.listed(time.monotonic())

    def wall_time(self, monotonic_at: float | None) -> float | None:
        return None if monotonic_at is None else time.time() - (time.monotonic() - monotonic_at)
