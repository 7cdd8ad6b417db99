"""The controller role: the asyncio edge around controller/core.ControllerCore.

It decides nothing. What it does (CLUSTER.md decisions 1-5):
- binds one vpnbus ROUTER (`BusServer`, any CURVE key may connect: the join
  authenticates) on the host of the first listener and `Farm.bus_port`
  (0 = a free port, then saved so it is stable across restarts), with the
  node keypair STATE_DIR/bus/node;
- serves `GET /vpncluster/bus` on the HTTPS listener: where the bus is and
  which key it has (unauthenticated: it only says where and who);
- feeds the core: every bus message (the core's refusals become bus errors
  through node/cluster/errors_map.py), PeerSeen events, request outcomes,
  this node's own load when the core asks (PollLocal), and every change of
  the configuration (NodeState.watch);
- one pump: after every input it carries out the core's actions (sends,
  requests as tasks that report back, forgotten routes, dynamic hub
  instances on this node, log lines; member events at debug level) and
  re-arms the one timer at the core's next deadline;
- metrics (node/metrics.py) of what only this edge sees: each status poll's
  round trip, each join attempt's result, each eviction;
- endpoint checks (CheckEndpoint) as tasks, one per member (a newer one
  cancels the older): TLS to the member's public IP on the ports a
  redirected client can use, certificate compared with the member's
  (node/cluster/endpoint_check.py says which ports and why), reported with
  `endpoint_checked`.

The liveness timeout (3 s) can be overridden with VPNCLUSTER_LIVENESS_S,
for tests and benches. Times are the event loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from controller import core as cc
from controller import core_io as ci
from controller import messages as msg
from controller.drain import DrainOrder, DrainView
from controller.errors import ControllerError, InvalidReport, NotInThisMode
from controller.join_desk import JoinThrottled
from controller.member_life import MemberEvicted
from controller.points import DEFAULT_WEIGHT, points
from controller.registry import HubInstance, JoinInfo, Member, MemberStatus
from node.cluster.controller_bus import (
    HubConfigCache, bind_router, bus_host, hub_configs, key_bytes, key_text, liveness_from_env, node_keys,
)
from node.cluster.endpoint_check import check_endpoint, ports_to_check
from node.cluster.errors_map import bus_refusal
from node.cluster.member_discovery import DISCOVERY_VERSION, PATH as DISCOVERY_PATH
from node.state import model
from vpnbus.endpoint import LivenessEvent
from vpnbus.requests import PeerGone, PeerSeen
from vpnbus.server import BusServer
from vpnbus.sockets import BusError

if TYPE_CHECKING:
    from node.listener import HttpRequest
    from node.server import VpnServer

log = logging.getLogger("vpnd.cluster")

MAX_SERVER_CERT_BYTES = cc.MAX_SERVER_CERT_BYTES


def cluster_config(config: model.Server, cache: HubConfigCache | None = None) -> ci.ClusterConfig:
    """What the core needs of the node's configuration."""
    hubs = hub_configs(config) if cache is None else cache.hub_configs(config)
    return ci.ClusterConfig(serial=config.serial, password_hash=config.admin_password_hash,
                            controller_only=config.farm.controller_only, hubs=tuple(hubs),
                            drains=tuple(DrainOrder(d.member_key, float(d.rate)) for d in config.farm.drains))


class ControllerRole:
    def __init__(self, server: VpnServer, *, liveness_timeout_s: float | None = None) -> None:
        self.server = server
        self.liveness_timeout_s = liveness_timeout_s or liveness_from_env()
        self.keys = node_keys(server.state_dir)
        self.bus_port = 0
        self._core: cc.ControllerCore | None = None
        self._bus: BusServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._logins: dict[int, asyncio.Future[ci.LoginOutcome]] = {}
        self._endpoint_checks: dict[int, asyncio.Task[None]] = {}
        self._running = False
        self._hub_records = HubConfigCache()

    @property
    def core(self) -> cc.ControllerCore:
        """The running core; raises RuntimeError before start()."""
        if self._core is None:
            raise RuntimeError("the controller role is not started")
        return self._core

    # ----- life ------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.server.state.config
        self._bus = await self._bind(config)
        self._core = cc.ControllerCore(key=key_bytes(self.keys.public), info=self._my_info(config),
                                       config=cluster_config(config, self._hub_records), now=self._now(),
                                       liveness_timeout_s=self.liveness_timeout_s)
        self._running = True
        self.server.state.watch(self._on_config)
        self.server.routes[("GET", DISCOVERY_PATH)] = self._discovery
        self._pump()
        log.info("cluster controller: bus %s, key %s, liveness %.1f s", self._bus.endpoint, self.keys.public,
                 self.liveness_timeout_s)

    async def stop(self) -> None:
        self._running = False
        self.server.state.unwatch(self._on_config)
        if self.server.routes.get(("GET", DISCOVERY_PATH)) == self._discovery:
            del self.server.routes[("GET", DISCOVERY_PATH)]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._requests):
            task.cancel()
        await asyncio.gather(*self._requests, return_exceptions=True)
        for waiting in self._logins.values():
            if not waiting.done():
                waiting.set_result(ci.LoginFailed(error=NotInThisMode("the cluster controller role stopped")))
        self._logins.clear()
        if self._bus is not None:
            await self._bus.close()
        self.server.dynamic_instances.clear()
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

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    @property
    def running(self) -> bool:
        return self._running

    def now(self) -> float:
        """The clock of the core's times (the event loop's)."""
        return self._now()

    # ----- inputs ---------------------------------------------------------------

    def _discovery(self, request: HttpRequest, peer: str) -> tuple[int, list[tuple[str, str]], bytes]:
        body = json.dumps({"bus_port": self.bus_port, "controller_key": self.keys.public,
                           "version": DISCOVERY_VERSION})
        return 200, [("Content-Type", "application/json")], body.encode()

    async def _handle(self, peer: str, message: object) -> object | None:
        address = (self._bus.peer_address(peer) if self._bus else None) or ""
        joining = isinstance(message, (msg.JoinHello, msg.JoinProof))
        try:
            reply = self.core.receive(key_bytes(peer), address, message, self._now())
        except ControllerError as exc:
            if joining:
                self.server.metrics.join_attempts.labels(_join_result(exc)).inc()
            raise bus_refusal(exc) from None
        finally:
            # After the reply is sent (the core's contract: a JoinAccepted
            # before its configuration, a Leave's Ack before its route is forgotten).
            assert self._loop is not None
            self._loop.call_soon(self._pump)
        if isinstance(message, msg.JoinProof):
            self.server.metrics.join_attempts.labels("accepted").inc()
        return reply

    def _on_bus_event(self, event: LivenessEvent) -> None:
        if not self._running:
            return
        if isinstance(event, PeerSeen):
            self.core.peer_seen(key_bytes(event.peer), self._now())
        elif isinstance(event, PeerGone):
            self.core.peer_gone(key_bytes(event.peer), self._now())
        else:
            return  # silence: the core keeps its own clock per member
        self._pump()

    def _on_config(self, config: model.Server) -> None:
        if not self._running or config.farm.server_type != model.SERVER_CONTROLLER:
            # SetFarmSetting converted the hubs for another mode and is about to stop
            # this role: pushing that config would empty every member's hubs.
            return
        self.core.configure(cluster_config(config, self._hub_records), self._now())
        self._pump()

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.core.handle_timer(self._now())
        except Exception:  # a bug costs this round (logged), never the timer
            log.exception("cluster controller: liveness tick failed")
        self._pump()

    async def _request(self, action: ci.Request) -> None:
        assert self._bus is not None
        sent_at = self._now()
        try:
            reply = await self._bus.request(key_text(action.peer), action.message, timeout_s=action.timeout_s)
        except (BusError, ValueError) as exc:  # ValueError: over the bus's frame limit
            if self._running:
                self.core.request_failed(action.token, str(exc) or type(exc).__name__, self._now())
        else:
            if self._running:
                self.core.reply_received(action.token, reply, self._now())
                self._replied(action, reply, self._now() - sent_at)
        if self._running:
            self._pump()

    def _replied(self, action: ci.Request, reply: object, round_trip_s: float) -> None:
        """Metrics of a reply: a poll's round trip (members' serials come from the core's sync status)."""
        member = self.core.registry.by_key(action.peer)
        if member is None:
            return
        if isinstance(action.message, msg.StatusPoll):
            self.server.metrics.poll_round_trip.labels(str(member.member_id), member.hostname).observe(round_trip_s)

    def _start_endpoint_check(self, action: ci.CheckEndpoint) -> None:
        old = self._endpoint_checks.pop(action.member_id, None)
        if old is not None:
            old.cancel()  # superseded: only the newest is reported (the core's contract)
        task = asyncio.ensure_future(self._check_endpoint(action))
        self._endpoint_checks[action.member_id] = task
        self._requests.add(task)  # stop() cancels it
        task.add_done_callback(self._requests.discard)

    async def _check_endpoint(self, action: ci.CheckEndpoint) -> None:
        controller_ports = [model.listener_address(t)[1] for t in self.server.state.config.listeners]
        ok, reason = await check_endpoint(action.ip, ports_to_check(action.ports, controller_ports), action.cert)
        if self._endpoint_checks.get(action.member_id) is asyncio.current_task():
            del self._endpoint_checks[action.member_id]
        if self._running:
            self.core.endpoint_checked(action.member_id, ok, reason, self._now())
            self._pump()

    # ----- the pump -------------------------------------------------------------------

    def _pump(self) -> None:
        """Carry out the core's actions, then re-arm the one timer."""
        if not self._running or self._core is None:
            return
        while actions := self._core.take_actions():  # carrying one out may queue more
            for action in actions:
                try:
                    self._carry_out(action)
                except Exception:  # a bug costs this action (logged), never the others
                    log.exception("cluster controller: %s failed", type(action).__name__)
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_at(self._core.next_deadline(), self._on_timer)

    def _carry_out(self, action: ci.Action) -> None:
        assert self._bus is not None
        if isinstance(action, ci.Send):
            try:
                self._bus.notify(key_text(action.peer), action.message)
            except BusError as exc:
                log.debug("cannot send %s: %s", type(action.message).__name__, exc)
        elif isinstance(action, ci.Request):
            task = asyncio.ensure_future(self._request(action))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        elif isinstance(action, ci.Forget):
            self._bus.forget(key_text(action.peer))
        elif isinstance(action, ci.SetLocalInstance):
            self.server.dynamic_instances.set(action.hub, action.running)
        elif isinstance(action, ci.PollLocal):
            try:
                self.core.local_status(self._local_status(), self._now())
            except Exception:
                log.exception("cluster controller: status poll round failed")
        elif isinstance(action, ci.Log):
            log.log(action.level, "%s", action.text)
        elif isinstance(action, ci.LoginPlaced):
            waiting = self._logins.pop(action.login_id, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(action.outcome)
        elif isinstance(action, ci.ClusterEvent):
            log.debug("%s", action.event)
            if isinstance(action.event, MemberEvicted):
                evicted = next((m for m in self.core.registry.members() if m.member_id == action.event.member_id),
                               None)
                if evicted is not None:
                    self.server.metrics.evictions.labels(str(evicted.member_id), evicted.hostname).inc()
        elif isinstance(action, ci.CheckEndpoint):
            self._start_endpoint_check(action)

    def _local_status(self) -> MemberStatus:
        config = self.server.state.config
        hubs, sessions = [], 0
        for hub in config.hubs:
            runtime = self.server.running_hub(hub.name)
            if runtime is not None:
                n = runtime.session_count()
                sessions += n
                hubs.append(HubInstance(name=hub.name, dynamic=hub.hub_type == model.HUB_DYNAMIC, sessions=n))
        return MemberStatus(points=points(sessions, config.farm.weight), sessions=sessions,
                            tcp_connections=self.server.tcp_connection_count(), hubs=tuple(hubs))

    # ----- for the VPN listener ------------------------------------------------------------

    async def place_login(self, login: ci.LoginRequest) -> ci.LoginOutcome:
        """Where an authenticated VPN login goes (see ControllerCore.place_login);
        bounded by the core's ticket deadlines."""
        if not self._running:
            return ci.LoginFailed(error=NotInThisMode("the cluster controller role is not running"))
        assert self._loop is not None
        outcome: asyncio.Future[ci.LoginOutcome] = self._loop.create_future()
        self._logins[self.core.place_login(login, self._now())] = outcome
        self._pump()
        return await outcome

    # ----- views for the admin API ---------------------------------------------------------

    def listed_members(self) -> list[Member]:
        """The controller, then members now in load balancing (not silent for the liveness timeout)."""
        return self.core.listed_members(self._now())

    def drain_view(self, member_id: int) -> DrainView | None:
        """How the drain of `member_id` goes, None if it is not drained; raises MemberUnknown."""
        return self.core.drain_view(member_id)

    def config_bytes_sent(self) -> int:
        """Bytes of configuration (deltas and full-sync chunks, encoded) this controller sent on the bus."""
        if self._bus is None:
            return 0
        return sum(self._bus.counters[f"bytes_out.{kind.__name__}"] for kind in (msg.ConfigDelta, msg.ConfigChunk))

    def wall_time(self, monotonic_at: float | None) -> float | None:
        return None if monotonic_at is None else time.time() - (self._now() - monotonic_at)

    async def request(self, member_id: int, message: object, timeout_s: float = cc.PUSH_TIMEOUT_S) -> object:
        """Send one request to a member and await its reply (for the admin API's
        gathering of sessions and tables).

        Raises MemberUnknown, or vpnbus BusError subclasses (RequestTimeout,
        RemoteError with a SoftEther code, PeerUnreachable, ...).
        """
        assert self._bus is not None
        return await self._bus.request(key_text(self.core.member_key(member_id)), message, timeout_s=timeout_s)


def _join_result(exc: ControllerError) -> str:
    """The `result` label of a refused join (node/metrics.py JOIN_RESULTS)."""
    if isinstance(exc, cc.JoinRefused):
        return "wrong_password"
    if isinstance(exc, JoinThrottled):
        return "throttled"
    if isinstance(exc, InvalidReport):
        return "invalid"
    return "refused"
