"""Helpers of the cluster roles' bus edge: the node's keypair, key text ↔
bytes, the liveness setting, the configuration records, and binding the ROUTER."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import zmq
from zmq.utils import z85

from controller import messages as msg
from node.state import model
from vpnbus.endpoint import BusConfig, EventCallback, Handler
from vpnbus.keys import Keypair, load_or_create
from vpnbus.records import convert
from vpnbus.server import BusServer
from vpnbus.sockets import KeyPolicy, SocketOptions, tcp_endpoint

log = logging.getLogger("vpnd.cluster")

LIVENESS_ENV = "VPNCLUSTER_LIVENESS_S"
DEFAULT_LIVENESS_S = 3.0
CLUSTER_HUB_TYPES = (model.HUB_STATIC, model.HUB_DYNAMIC)
BUS_DIR, NODE_KEY = "bus", "node"
"""STATE_DIR/bus holds the node's CURVE keypair (node.*, one for both roles) and a member's controller pin."""


def node_keys(state_dir: Path) -> Keypair:
    """This node's bus keypair, made on first use. Raises vpnbus.keys.KeyFileError if it is damaged."""
    return load_or_create(Path(state_dir) / BUS_DIR, NODE_KEY)


def liveness_from_env(default: float = DEFAULT_LIVENESS_S) -> float:
    """VPNCLUSTER_LIVENESS_S (0.2..600 s) if set and valid, else `default`."""
    try:
        value = float(os.environ.get(LIVENESS_ENV, ""))
    except ValueError:
        return default
    return value if 0.2 <= value <= 600 else default


def key_bytes(peer: str) -> bytes:
    return z85.decode(peer.encode("ascii"))


def key_text(key: bytes) -> str:
    return z85.encode(key).decode("ascii")


def cluster_hubs(config: model.Server) -> dict[str, bool]:
    """Every cluster hub (static or dynamic) of the config: name → dynamic."""
    return {h.name: h.hub_type == model.HUB_DYNAMIC for h in config.hubs if h.hub_type in CLUSTER_HUB_TYPES}


def hub_configs(config: model.Server) -> list[msg.HubConfig]:
    """Every cluster hub, whole, as the configuration sync carries it (copied field by
    field name, so a model field HubConfig/UserConfig lacks is refused, never dropped)."""
    return [convert(h, msg.HubConfig) for h in config.hubs if h.hub_type in CLUSTER_HUB_TYPES]


class HubConfigCache:
    """hub_configs for a config that changes a hub at a time: a hub equal to
    the one converted last time keeps its record (converting 100,000 users
    takes ~0.6 s; comparing them a tenth of that), and the sync's diff then
    skips it by identity."""

    def __init__(self) -> None:
        self._records = model.PerHubCache(lambda hub: convert(hub, msg.HubConfig))

    def hub_configs(self, config: model.Server) -> list[msg.HubConfig]:
        return self._records.values([h for h in config.hubs if h.hub_type in CLUSTER_HUB_TYPES])


def bus_host(config: model.Server) -> str:
    """Where the bus binds: the host of the first listener ("*" = every address)."""
    host = model.listener_address(config.listeners[0])[0] if config.listeners else "0.0.0.0"
    return "*" if host == "0.0.0.0" else host


async def bind_router(host: str, port: int, keys: Keypair, handler: Handler, on_event: EventCallback,
                      liveness_timeout_s: float) -> BusServer:
    """Bind the ROUTER on host:port; a saved port that cannot be bound any more
    is replaced by a free one (members find it again through discovery)."""
    # A closed connection evicts its member at once, so libzmq's own PING
    # timeout must not close a frozen member's connection before the
    # liveness timeout has its say (it is there for half-open connections).
    socket = SocketOptions(heartbeat_timeout_ms=int((liveness_timeout_s + 1.0) * 1000))
    config = BusConfig(silence_timeout_s=liveness_timeout_s, heartbeat_interval_s=min(1.0, liveness_timeout_s / 3),
                       socket=socket)

    async def start(p: int) -> BusServer:
        endpoint = f"tcp://*:{p}" if host == "*" else tcp_endpoint(host, p)
        # Any CURVE key may connect: the application join authenticates (CLUSTER.md decision 3).
        return await BusServer.start(endpoint, keys, handler, policy=KeyPolicy(allow_any=True), on_event=on_event,
                                  config=config)
    try:
        return await start(port)
    except zmq.ZMQError as exc:
        if not port:
            raise
        log.warning("cluster bus port %d unusable (%s): picking another one", port, exc)
        return await start(0)
