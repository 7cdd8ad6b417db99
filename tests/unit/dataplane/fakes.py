"""Test doubles for the data plane: a VPN session with the attributes the
real `VpnSession` exposes to the running hub and the admin API, a recording
hub port, a data plane over a real NodeState in a temporary directory, and
frame builders."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from node.dataplane.hubs import RunningHub
from node.dataplane.service import DataPlane
from node.dataplane.virtual_hub import VirtualHub
from node.server import VpnServer
from node.state import model
from node.state.node_state import NodeState

BCAST = b"\xff" * 6


def mac(i: int) -> bytes:
    return bytes((2, 0, 0, 0, 0, i))


def ipv4_frame(dst: bytes, src: bytes, src_ip: bytes, dst_ip: bytes) -> bytes:
    """An Ethernet + minimal IPv4 (ICMP) frame: learns src MAC and src IP."""
    header = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0]) + src_ip + dst_ip
    return dst + src + b"\x08\x00" + header + bytes(8 + 18)


def eth(dst: bytes, src: bytes, tag: int = 0) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag]) * 46


class RecordingPort:
    """A hub port that records each batch it is sent."""

    def __init__(self, pid: str) -> None:
        self.id = pid
        self.name = pid.upper()
        self.calls: list[list[bytes]] = []

    def send_frames(self, frames: list[bytes]) -> None:
        self.calls.append(list(frames))


def hub_with(*ports) -> VirtualHub:
    """A VirtualHub at a fixed time with `ports` attached."""
    hub = VirtualHub("HUB", clock=lambda: 1.0)
    for p in ports:
        hub.attach(p)
    return hub


class FakeSession:
    """Stands in for node/dataplane/session.py's VpnSession (same attribute names).
    `running_hub` only names it; `running_hub.add_session` attaches it."""

    def __init__(self, running_hub: RunningHub, username: str, client_ip: str = "127.0.0.5") -> None:
        self.name = running_hub.next_session_name(username)
        self.id = ("session", self.name)
        self.connection_name = "CID-7"
        self.username = username
        self.hub_name = running_hub.name
        self.client_ip = client_ip
        self.client_port = 40001
        self.client_hostname = "client-host"
        self.client_product = "SoftEther VPN Client"
        self.client_version = 501
        self.client_build = 9674
        self.created_time = time.time() - 60
        self.last_comm_time = time.time() - 1
        self.tcp_connections = 2
        self.max_tcp_connections = 8
        self.use_encrypt = True
        self.use_compress = False
        self.session_key = bytes(range(20))
        self.total_send_bytes = 1000
        self.total_recv_bytes = 3000
        self.dropped_queue_full = 0
        self.dropped_oversize = 0
        self.unique_id = bytes(range(16))
        self.received: list[bytes] = []
        self.close_reasons: list[str] = []
        self._detach: Callable[[FakeSession], None] | None = None

    def send_frames(self, frames: list[bytes]) -> None:
        self.received.extend(frames)

    def attached(self, detach: Callable[[FakeSession], None]) -> None:
        self._detach = detach

    async def close(self, reason: str) -> None:
        self.close_reasons.append(reason)
        if self._detach is not None:
            self._detach(self)


def make_server(tmp: Path, hubs: list[model.Hub] | None = None,
                bridges: list[model.Bridge] | None = None) -> VpnServer:
    config = model.Server(admin_password_hash=bytes(20), listeners=[],
                          hubs=hubs or [], bridges=bridges or [])
    state = NodeState.create(tmp, config)
    return VpnServer(state=state, state_dir=tmp, cert_der=b"")


def make_dataplane(server: VpnServer, retry_interval_s: float = 0.05) -> DataPlane:
    return DataPlane(server, retry_interval_s=retry_interval_s)


@contextlib.asynccontextmanager
async def running_dataplane(server: VpnServer, retry_interval_s: float = 0.05):
    """A started DataPlane, stopped on exit (also after a failure)."""
    dp = make_dataplane(server, retry_interval_s)
    await dp.start()
    try:
        yield dp
    finally:
        await dp.stop()
