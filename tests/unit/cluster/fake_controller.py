"""An in-test cluster controller for the member role's edge: a vpnbus
BusServer, the controller half of the join (controller/joinauth.py) and the
discovery JSON served by a tiny HTTPS server -- all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from collections.abc import Callable
from typing import Any

from zmq.utils import z85

from controller.errors import AuthFailed
from controller.joinauth import ControllerJoinAuth
from controller.messages import (
    HubConfig, JoinAbort, JoinAccepted, JoinChallenge, JoinHello, JoinProof, Leave, ConfigChunk,
    UserConfig,
)
from node.softether.errors import Err
from node.state.tlscert import ensure_certificate, server_context
from vpnbus import keys
from vpnbus.endpoint import BusConfig, RequestFailed
from vpnbus.server import BusServer
from vpnbus.sockets import KeyPolicy

MEMBER_ID = 5
HUBS = [HubConfig(name="HUB1", hub_type=1, online=True, max_session=0, no_enum=False,
                  hashed_password=b"\x01" * 20, secure_password=b"\x02" * 20, created_time=1.5e9,
                  users=[UserConfig(name="alice", auth_type=1, hashed_key=b"\x03" * 20)])]


class FakeController:
    def __init__(self, state_dir: Path, password_hash: bytes, *, push_serial: int = 10,
                 silence_timeout_s: float = 3.0) -> None:
        self.state_dir = state_dir
        self.password_hash = password_hash
        self.push_serial = push_serial
        self.bus_config = BusConfig(heartbeat_interval_s=silence_timeout_s / 3,
                                    silence_timeout_s=silence_timeout_s)
        self.keys = keys.load_or_create(state_dir / "bus", "node")
        self.bus: BusServer | None = None
        self.http: asyncio.Server | None = None
        self.http_port = 0
        self.bus_port = 0
        self.hellos: list[tuple[str, JoinHello]] = []
        self.joined: list[str] = []
        self.aborts = 0
        self.leaves: list[str] = []
        self.discoveries = 0
        self.push_on_hello = False
        """Try a configuration push before the join is done (as a fake controller would)."""
        self.early_push_results: list[Any] = []
        self.fake = False
        self.on_proof: Callable[[], None] | None = None
        """Called when a JoinProof arrives, before it is answered."""
        """Accept any proof unchecked and answer with a proof made without the
        password, then push at once (a fake controller that got the member's proof)."""
        self._auth: dict[str, ControllerJoinAuth] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self, http_port: int = 0, bus_port: int = 0) -> "FakeController":
        self.bus = await BusServer.start(f"tcp://127.0.0.1:{bus_port}", self.keys, self.handle,
                                         policy=KeyPolicy(allow_any=True), config=self.bus_config)
        self.bus_port = int(self.bus.endpoint.rsplit(":", 1)[1])
        cert, key = ensure_certificate(self.state_dir)
        self.http = await asyncio.start_server(self._serve_http, "127.0.0.1", http_port,
                                               ssl=server_context(cert, key))
        self.http_port = self.http.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            self.http.close()
            await self.http.wait_closed()
        if self.bus is not None:
            await self.bus.close()

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            self.discoveries += 1
            body = json.dumps({"bus_port": self.bus_port, "controller_key": self.keys.public,
                               "version": 1}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    def handle(self, peer: str, msg: Any) -> Any:
        if isinstance(msg, JoinHello):
            self.hellos.append((peer, msg))
            auth = self._auth[peer] = ControllerJoinAuth(
                self.password_hash, z85.decode(self.keys.public), z85.decode(peer))
            nonce = auth.receive_hello(msg.nonce)
            if self.push_on_hello:
                self.run(self._early_push(peer))
            return JoinChallenge(nonce=nonce)
        if isinstance(msg, JoinProof) and self.fake:
            self._auth.pop(peer, None)
            self.run(self._early_push(peer))
            return JoinAccepted(member_id=MEMBER_ID, controller_hostname="fake-controller", proof=bytes(32))
        if isinstance(msg, JoinProof):
            if self.on_proof is not None:
                self.on_proof()
            try:
                proof = self._auth.pop(peer).receive_proof(msg.proof)
            except (AuthFailed, KeyError):
                raise RequestFailed(Err.ACCESS_DENIED, "password proofs do not match") from None
            self.joined.append(peer)
            self.run(self.push(peer))
            return JoinAccepted(member_id=MEMBER_ID, controller_hostname="fake-controller", proof=proof)
        if isinstance(msg, JoinAbort):
            self.aborts += 1
            return None
        if isinstance(msg, Leave):
            self.leaves.append(peer)
            return None
        raise RequestFailed(Err.ACCESS_DENIED, "not joined")

    def run(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def push(self, peer: str, hubs: list[HubConfig] | None = None, serial: int | None = None) -> Any:
        assert self.bus is not None
        serial = self.push_serial if serial is None else serial
        # The whole configuration as a full sync of one part.
        return await self.bus.request(peer, ConfigChunk(sync_id=serial, serial=serial, index=0, count=1,
                                                        hubs=HUBS if hubs is None else hubs))

    async def request(self, peer: str, msg: Any) -> Any:
        assert self.bus is not None
        return await self.bus.request(peer, msg)

    async def _early_push(self, peer: str) -> None:
        try:
            self.early_push_results.append(await self.push(peer, serial=99))
        except Exception as exc:  # the member's refusal is what the test looks at
            self.early_push_results.append(exc)
