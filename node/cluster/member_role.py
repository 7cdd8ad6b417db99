"""The member role: the asyncio edge around the member link core.

One attempt (node/cluster/member_link.py numbers them) runs in one task:

1. discovery over HTTPS (member_discovery.py) → bus port + controller key;
2. the key must equal STATE_DIR/bus/controller.pinned if there is one
   (decided by the core; a changed key is never connected to);
3. a vpnbus BusClient with this node's keypair (STATE_DIR/bus/node.*) to
   tcp://<ControllerName>:<bus_port>, pinned by CURVE to the offered key;
4. the join (controller/joinauth.py): JoinHello → JoinChallenge (the
   controller's nonce), JoinProof (ours) → JoinAccepted, which carries the
   controller's proof; we check it and send JoinAbort if it is wrong (not
   the real controller), and trust nothing from that attempt. The first
   successful join pins the controller key.

Once online, the controller's messages are served here: ConfigDelta and
ConfigChunk go through the ConfigReceiver (controller/config_sync.py: a
delta applies only at its base serial, chunks are assembled and applied
whole), and only the hubs that changed are rewritten in config.hubs (a
copy that cannot be stored resets the receiver, so the controller sends it
all again); the receiver outlives a reconnection, so a member that rejoins
gets only the changes it missed. StatusPoll → StatusReport (with the tickets not yet
redeemed: sessions about to arrive), CreateTicket → stored in
`server.tickets` for the VPN listener to redeem → TicketCreated, Create/DeleteHubInstance change
`server.dynamic_instances` (the data plane follows), Rejoin → join again.
Controller silence (vpnbus PeerSilent, 3 s) → offline and retry; the hub
instances and their sessions keep running (CLUSTER.md decision 10).

Messages are accepted only from the bus client of the current attempt and
only after the controller proved the password on it, so a fake controller
can never change our configuration.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.errors import AuthFailed, TicketReused
from controller.tickets import TicketGrant
from controller.joinauth import MemberJoinAuth
from controller.messages import (
    PROTOCOL_VERSION, Ack, ConfigChunk, ConfigDelta, CreateHubInstance, CreateTicket, TicketCreated, DeleteHubInstance,
    HubConfig, HubReport, JoinAbort, JoinAccepted, JoinChallenge, JoinHello, JoinProof, Leave, Rejoin, StatusPoll,
    StatusReport,
)
from controller.config_sync import ConfigReceiver, ConfigUpdate
from controller.registry import hub_key
from controller.points import DEFAULT_MAX_SESSIONS, points
from node.cluster import member_services
from node.cluster.controller_bus import BUS_DIR, key_bytes, liveness_from_env, node_keys
from node.cluster.member_discovery import TIMEOUT_S as DISCOVERY_TIMEOUT_S
from node.cluster.member_discovery import DiscoveryFailed, discover
from node.cluster.member_link import (
    ATTEMPT_TIMEOUT_S, JITTER_S, RETRY_INTERVAL_S, Connect, Disconnect, LinkState, LinkStatus, Log,
    MemberLink,
)
from node.softether.errors import Err
from node.state import model
from vpnbus import keys
from vpnbus.client import BusClient
from vpnbus.records import convert
from vpnbus.endpoint import BusConfig, RemoteError, RequestFailed, RequestTimeout
from vpnbus.requests import PeerSilent
from vpnbus.sockets import BusError, QueueFull, tcp_endpoint

if TYPE_CHECKING:
    from node.server import VpnServer

log = logging.getLogger("vpnd.cluster.member")

CONTROLLER_PIN = "controller"
REQUEST_TIMEOUT_S = 5.0
CLOSE_GRACE_S = 0.2
"""A closing bus client lingers this long so a JoinAbort/Leave just sent goes out."""
SEND_RETRY_S = 0.05
WRONG_PASSWORD_TEXT = "wrong controller password or not the real controller"


class JoinError(Exception):
    """One attempt failed; `code` is the SoftEther error the status shows."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{text} (error {code})")
        self.code, self.text = int(code), text


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """GetFarmConnectionStatus, with wall-clock times (Unix seconds, 0 = never)."""

    controller_ip: str
    controller_port: int
    link: LinkStatus
    started_time: float
    first_connected_time: float
    current_connected_time: float


def forget_controller_pin(state_dir: Path) -> None:
    """Drop the pinned controller key: the next join trusts whichever
    controller answers it (a new member setting)."""
    keys.forget_pinned(Path(state_dir) / BUS_DIR, CONTROLLER_PIN)


def hub_from_push(hub: HubConfig) -> model.Hub:
    """A pushed hub as this node stores it, every field copied by name
    (vpnbus.records.convert). Raises ValueError for a hub type a controller
    may not push (only static 1 and dynamic 2 exist in a cluster)."""
    if hub.hub_type not in (model.HUB_STATIC, model.HUB_DYNAMIC):
        raise ValueError(f"hub {hub.name!r}: type {hub.hub_type} is not a cluster hub type")
    return convert(hub, model.Hub)


class MemberRole:
    """Member mode of a running vpnd: `await start()`, `await stop()`, `status()`."""

    def __init__(self, server: "VpnServer", *, retry_interval_s: float = RETRY_INTERVAL_S,
                 jitter_s: float = JITTER_S, liveness_timeout_s: float | None = None,
                 request_timeout_s: float = REQUEST_TIMEOUT_S,
                 discovery_timeout_s: float = DISCOVERY_TIMEOUT_S) -> None:
        if liveness_timeout_s is None:
            # The same figure as the controller's (VPNCLUSTER_LIVENESS_S, default 3 s).
            liveness_timeout_s = liveness_from_env()
        self.server = server
        self.key_dir = server.state_dir / BUS_DIR
        self.link = MemberLink(retry_interval_s=retry_interval_s, jitter_s=jitter_s,
                               attempt_timeout_s=max(ATTEMPT_TIMEOUT_S, discovery_timeout_s
                                                     + 2 * request_timeout_s + 1.0))
        self.bus_config = BusConfig(request_timeout_s=request_timeout_s,
                                    heartbeat_interval_s=min(1.0, liveness_timeout_s / 3),
                                    silence_timeout_s=liveness_timeout_s)
        self.discovery_timeout_s = discovery_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keys: keys.Keypair | None = None
        self._client: BusClient | None = None
        self._client_attempt = 0
        self._trusted_attempt = 0      # attempt whose controller proved the password
        self.receiver = ConfigReceiver()
        self._attempts: dict[int, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._controller = ("0.0.0.0", 0)
        self._farm: model.Farm | None = None
        """The member setting this role runs for; SetFarmSetting replaces it before stopping us."""
        self._stopped = False

    # -- life -------------------------------------------------------------------

    async def start(self) -> None:
        """Begin trying to join. Raises keys.KeyFileError if the node key is damaged."""
        self._loop = asyncio.get_running_loop()
        self._keys = node_keys(self.server.state_dir)
        farm = self._farm = self.server.state.config.farm
        log.info("member of the cluster controller %s:%d (bus key %s)",
                 farm.controller_host, farm.controller_port, self._keys.public)
        self.link.start(self._now())
        self._pump()

    async def stop(self) -> None:
        """Leave the cluster (best effort) and stop every task. Idempotent."""
        if self._stopped or self._loop is None:
            self._stopped = True
            return
        self._stopped = True
        if self.link.state is LinkState.ONLINE and self._client is not None:
            try:
                self._client.notify(Leave(reason="member mode ended"))
            except BusError:
                pass  # the controller evicts us by silence instead
        self.link.stop(self._now())
        self._pump()
        if self._timer is not None:
            self._timer.cancel()
        pending = [*self._attempts.values(), *self._background]
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("left member mode")

    def status(self) -> ConnectionStatus:
        link = self.link.status()
        # One offset for all three, so equal monotonic times stay equal.
        offset = time.time() - self._now() if self._loop is not None else 0.0

        def wall(monotonic_s: float) -> float:
            return monotonic_s + offset if monotonic_s else 0.0

        return ConnectionStatus(
            controller_ip=self._controller[0], controller_port=self._controller[1], link=link,
            started_time=wall(link.started_time),
            first_connected_time=wall(link.first_connected_time),
            current_connected_time=wall(link.current_connected_time))

    # -- driving the core --------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _pump(self) -> None:
        """Carry out the core's actions, then re-arm the one timer."""
        for action in self.link.take_actions():
            if isinstance(action, Connect):
                task = asyncio.ensure_future(self._attempt(action.attempt))
                self._attempts[action.attempt] = task
                task.add_done_callback(functools.partial(self._attempt_done, action.attempt))
            elif isinstance(action, Disconnect):
                self._abandon(action.attempt)
            elif isinstance(action, Log):
                (log.warning if action.warning else log.info)("%s", action.text)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.link.next_deadline()
        if deadline is not None and not self._stopped:
            assert self._loop is not None  # start() ran
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.link.handle_timer(self._now())
        self._pump()

    def _attempt_done(self, attempt: int, task: asyncio.Task) -> None:
        if self._attempts.get(attempt) is task:
            del self._attempts[attempt]

    def _abandon(self, attempt: int) -> None:
        task = self._attempts.get(attempt)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._client is not None and self._client_attempt == attempt:
            self._close_client()

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            task = asyncio.ensure_future(self._close_later(client))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    @staticmethod
    async def _close_later(client: BusClient) -> None:
        await asyncio.sleep(CLOSE_GRACE_S)
        await client.close()

    # -- one attempt ---------------------------------------------------------------

    async def _attempt(self, attempt: int) -> None:
        try:
            await self._join(attempt)
        except (JoinError, DiscoveryFailed) as exc:
            self.link.failed(attempt, self._now(), exc.code, exc.text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must cost one attempt, not member mode
            log.exception("cluster join attempt %d failed", attempt)
            self.link.failed(attempt, self._now(), Err.INTERNAL_ERROR, f"internal error: {exc!r}")
        finally:
            if not self._stopped:
                self._pump()

    async def _join(self, attempt: int) -> None:
        assert self._keys is not None
        farm = self.server.state.config.farm
        if len(farm.member_password_hash) != 20:
            raise JoinError(Err.ACCESS_DENIED, "no controller password is configured")
        where = await discover(farm.controller_host, farm.controller_port, self.discovery_timeout_s)
        self._controller = (where.controller_ip, farm.controller_port)
        try:
            pinned = keys.load_pinned(self.key_dir, CONTROLLER_PIN)
        except keys.KeyFileError as exc:
            raise JoinError(Err.CERT_NOT_TRUSTED, f"pinned controller key unreadable: {exc}") from None
        if not self.link.discovered(attempt, self._now(), where.controller_key, pinned):
            return  # refused by the core (changed key) or stale: never connect
        if self._client is not None:
            self._close_client()
        self._client = await BusClient.start(
            tcp_endpoint(farm.controller_host, where.bus_port), self._keys, where.controller_key,
            functools.partial(self._on_message, attempt),
            on_event=functools.partial(self._on_bus_event, attempt), config=self.bus_config)
        self._client_attempt = attempt
        auth = MemberJoinAuth(farm.member_password_hash, key_bytes(self._keys.public),
                              key_bytes(where.controller_key))
        hello = JoinHello(
            version=PROTOCOL_VERSION, nonce=auth.hello(), hostname=self.server.hostname,
            public_ip=farm.public_ip or where.local_ip, public_ports=list(farm.public_ports),
            weight=farm.weight, max_sessions=DEFAULT_MAX_SESSIONS, server_cert=self.server.cert_der)
        challenge = await self._request(self._client, hello, JoinChallenge, first=True)
        try:
            proof = auth.receive_challenge(challenge.nonce)
        except AuthFailed as exc:
            raise JoinError(Err.PROTOCOL_ERROR, str(exc)) from None
        try:
            accepted = await self._request(self._client, JoinProof(proof=proof), JoinAccepted)
        except JoinError as exc:
            if exc.code == Err.ACCESS_DENIED:  # the controller found our proof wrong
                raise JoinError(Err.ACCESS_DENIED, WRONG_PASSWORD_TEXT) from None
            raise
        try:
            auth.receive_accept(accepted.proof)
        except AuthFailed as exc:
            try:
                self._client.notify(JoinAbort(reason=str(exc)))
            except BusError:
                pass
            raise JoinError(Err.ACCESS_DENIED, WRONG_PASSWORD_TEXT) from None
        if self.server.state.config.farm != self._farm:
            # SetFarmSetting ran during the join (and deleted the pin for the new
            # setting): pinning this controller now would refuse the next one.
            raise JoinError(Err.NOT_FARM_MEMBER, "the member setting changed during the join")
        self._trusted_attempt = attempt
        if pinned is None:
            keys.save_pinned(self.key_dir, CONTROLLER_PIN, where.controller_key)
            log.info("pinned the cluster controller key %s", where.controller_key)
        self.link.joined(attempt, self._now(), accepted.member_id)

    async def _request(self, client: BusClient, msg: Any, expect: type, first: bool = False) -> Any:
        """One join request. The first waits (bounded) for the CURVE connection:
        the DEALER refuses sends (QueueFull) until it is up."""
        deadline = self._now() + self.bus_config.request_timeout_s
        while True:
            try:
                reply = await client.request(msg, timeout_s=max(0.1, deadline - self._now()))
                break
            except QueueFull:
                if not first or self._now() >= deadline:
                    raise JoinError(Err.CONNECT_TO_FARM_CONTROLLER,
                                    "cannot connect to the controller's bus") from None
                await asyncio.sleep(SEND_RETRY_S)
            except RequestTimeout:
                raise JoinError(Err.CONNECT_TO_FARM_CONTROLLER,
                                "the controller's bus did not answer") from None
            except RemoteError as exc:
                raise JoinError(exc.code, exc.text or "the controller refused the join") from None
            except BusError as exc:
                raise JoinError(Err.DISCONNECTED, f"bus error: {exc}") from None
        if not isinstance(reply, expect):
            raise JoinError(Err.PROTOCOL_ERROR, f"expected {expect.__name__}, got {type(reply).__name__}")
        return reply

    # -- the controller's messages -----------------------------------------------------

    def _on_bus_event(self, attempt: int, event: Any) -> None:
        if isinstance(event, PeerSilent) and attempt == self.link.attempt:
            if self.link.lost(self._now(), Err.DISCONNECTED,
                              f"the controller was silent for {self.bus_config.silence_timeout_s:g} s"):
                self._pump()

    def _on_message(self, attempt: int, peer: str, msg: Any) -> Any:
        if self._stopped or attempt != self.link.attempt or attempt != self._trusted_attempt:
            raise RequestFailed(Err.ACCESS_DENIED, "not joined")
        if self.server.state.config.farm != self._farm:
            # The mode or the controller changed and this role is about to stop:
            # a push now would put the old controller's hubs into the new setting.
            raise RequestFailed(Err.NOT_FARM_MEMBER, "the member setting changed")
        if isinstance(msg, StatusPoll):
            return self.status_report()
        if isinstance(msg, CreateTicket):
            return self._store_ticket(msg)
        if isinstance(msg, ConfigDelta):
            ack, update = self._receive(self.receiver.delta, msg)
            self._apply(update)
            return ack
        if isinstance(msg, ConfigChunk):
            chunk_ack, update = self._receive(self.receiver.chunk, msg)
            self._apply(update)
            return chunk_ack
        if isinstance(msg, CreateHubInstance):
            self._set_instance(msg.hub, True)
            return Ack()
        if isinstance(msg, DeleteHubInstance):
            self._set_instance(msg.hub, False)
            return Ack()
        if isinstance(msg, Rejoin):
            if self.link.lost(self._now(), Err.DISCONNECTED,
                              f"the controller asked us to join again ({msg.reason})"):
                self._pump()
            return Ack()
        reply = member_services.serve(self.server, msg)  # sessions and tables (collective administration)
        if reply is not None:
            return reply
        raise RequestFailed(Err.NOT_SUPPORTED, f"{type(msg).__name__} is not served by this member")

    def status_report(self) -> StatusReport:
        """Our load now, as the controller's StatusPoll wants it."""
        server = self.server
        sessions = server.session_count()
        hubs = [HubReport(name=hub.name, dynamic=key in server.dynamic_instances,
                          sessions=hub.session_count(), mac_entries=hub.mac_table_size(),
                          ip_entries=hub.ip_table_size())
                for key, hub in sorted(server.hubs.items())]
        return StatusReport(points=points(sessions, server.state.config.farm.weight, DEFAULT_MAX_SESSIONS),
                            sessions=sessions, tcp_connections=server.tcp_connection_count(),
                            max_sessions=DEFAULT_MAX_SESSIONS, hubs=hubs,
                            tickets_outstanding=server.tickets.outstanding(time.monotonic()))

    def _store_ticket(self, request: CreateTicket) -> TicketCreated:
        grant = TicketGrant(hub=request.hub, user_name=request.user_name, real_user_name=request.real_user_name,
                            group=request.group, session_name=request.session_name, policy=request.policy)
        try:
            self.server.tickets.store(request.ticket, grant, time.monotonic())
        except (TicketReused, ValueError) as exc:
            raise RequestFailed(Err.INVALID_PARAMETER, f"ticket not stored: {exc}") from None
        return TicketCreated(points=self.status_report().points)

    def _receive(self, take: Any, message: Any) -> Any:
        try:
            return take(message)
        except ValueError as exc:  # inconsistent with our copy: the receiver reset, a full sync follows
            raise RequestFailed(Err.INVALID_PARAMETER, f"configuration refused: {exc}") from None

    def _apply(self, update: ConfigUpdate | None) -> None:
        """Store what the receiver took: only the hubs that changed are rewritten."""
        if update is None:
            return
        try:
            put = {hub_key(h.name): hub_from_push(h) for h in update.put}
        except ValueError as exc:
            self.receiver.reset()
            raise RequestFailed(Err.INVALID_PARAMETER, str(exc)) from None
        gone = {hub_key(name) for name in update.deleted}
        if update.whole and list(put.values()) == self.server.state.config.hubs:
            return  # a rejoin sent what we have: do not rewrite the config

        def apply(config: model.Server) -> None:
            if update.whole:
                config.hubs = list(put.values())
                return
            hubs = [put.pop(hub_key(h.name), h) for h in config.hubs if hub_key(h.name) not in gone]
            config.hubs = hubs + list(put.values())

        try:
            self.server.state.change(apply)
        except ValueError as exc:  # the store refused it (e.g. duplicate hub names)
            self.receiver.reset()
            raise RequestFailed(Err.INVALID_PARAMETER, f"configuration refused: {exc}") from None
        log.info("applied the controller's configuration (serial %d, %s)", update.serial,
                 f"{len(put)} hubs" if update.whole else f"{len(update.put)} hubs changed, {len(gone)} deleted")

    def _set_instance(self, hub: str, wanted: bool) -> None:
        self.server.dynamic_instances.set(hub, wanted)
        log.info("dynamic hub %s: instance %s by the controller", hub, "started" if wanted else "stopped")
