"""Test doubles at the controller's bus endpoint: a scripted member built from
vpnbus BusClient + controller/joinauth (joins, answers polls, records
pushes), and hostile peers (random bytes, a plain DEALER, a CURVE DEALER
with an unknown key sending garbage). Loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import http.client
from collections.abc import Callable
from dataclasses import dataclass

import zmq
import zmq.asyncio
from zmq.utils import z85

from controller import messages as msg
from controller.config_sync import ConfigReceiver
from controller.joinauth import MemberJoinAuth
from controller.points import points
from node.softether.sha0 import hash_admin_password
from vpnbus.client import BusClient
from vpnbus.keys import new_keypair


def discover(port: int) -> dict:
    """GET /vpncluster/bus on a controller's listener."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ssl._create_unverified_context())
    try:
        conn.request("GET", "/vpncluster/bus")
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        return json.loads(resp.read())
    finally:
        conn.close()


async def until(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until `cond()` holds, checking every 20 ms, at most `timeout_s` (generous: busy machines)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Received:
    """A member's hubs after one configuration update."""

    serial: int
    hubs: list[msg.HubConfig]
    whole: bool
    """A full sync (else a delta)."""


class FakeMember:
    """A member made of the bus client and the join handshake, nothing else."""

    def __init__(self, controller_port: int, password: str, *, hostname: str = "fake", weight: int = 100,
                 sessions: int = 0, public_ports: tuple[int, ...] = (443,), server_cert: bytes = b"fake-cert") -> None:
        self.controller_port = controller_port
        self.password_hash = hash_admin_password(password)
        self.hostname, self.weight, self.sessions = hostname, weight, sessions
        self.public_ports, self.server_cert = public_ports, server_cert
        """What it joins with: nothing listens there unless a test sees to it (its endpoint check fails)."""
        self.keys = new_keypair()
        self.receiver = ConfigReceiver()
        self.pushes: list[Received] = []
        """The configuration after each delta or full sync applied."""
        self.polls = 0
        self.rejoins = 0
        self.client: BusClient | None = None
        self.member_id = 0

    async def connect(self) -> None:
        info = await asyncio.to_thread(discover, self.controller_port)
        await self.connect_bus(info["bus_port"], info["controller_key"])

    async def connect_bus(self, bus_port: int, controller_key: str) -> None:
        """Connect without discovery (a controller role running in this process)."""
        self.controller_key = controller_key
        self.client = await BusClient.start(f"tcp://127.0.0.1:{bus_port}", self.keys, controller_key, self._handle)

    async def join(self) -> msg.JoinAccepted:
        """One join attempt; raises RemoteError (the controller refused us) or AuthFailed (our check of it)."""
        auth = MemberJoinAuth(self.password_hash, z85.decode(self.keys.public.encode()),
                              z85.decode(self.controller_key.encode()))
        await self._wait_link()
        challenge = await self.client.request(msg.JoinHello(
            version=msg.PROTOCOL_VERSION, nonce=auth.hello(), hostname=self.hostname, public_ip="127.0.0.1",
            public_ports=list(self.public_ports), weight=self.weight, max_sessions=0, server_cert=self.server_cert),
            timeout_s=5)
        proof = auth.receive_challenge(challenge.nonce)
        accepted = await self.client.request(msg.JoinProof(proof=proof), timeout_s=5)
        try:
            auth.receive_accept(accepted.proof)
        except Exception as exc:
            await self.client.request(msg.JoinAbort(reason=str(exc)), timeout_s=5)
            raise
        self.member_id = accepted.member_id
        return accepted

    async def _wait_link(self) -> None:
        for _ in range(100):
            if self.client.counters.get("handshake_succeeded"):
                return
            await asyncio.sleep(0.05)

    def _handle(self, peer: str, message: object) -> object:
        if isinstance(message, msg.StatusPoll):
            self.polls += 1
            return msg.StatusReport(points=points(self.sessions, self.weight), sessions=self.sessions,
                                    tcp_connections=self.sessions, max_sessions=0, hubs=[])
        if isinstance(message, (msg.ConfigDelta, msg.ConfigChunk)):
            reply, update = (self.receiver.delta(message) if isinstance(message, msg.ConfigDelta)
                             else self.receiver.chunk(message))
            if update is not None:
                self.pushes.append(Received(serial=update.serial, hubs=list(self.receiver.hubs.values()),
                                            whole=update.whole))
            return reply
        if isinstance(message, msg.Rejoin):
            self.rejoins += 1
        return None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def _send_bounded(sock: zmq.asyncio.Socket, data: bytes, timeout_s: float = 5.0) -> bool:
    """Send without blocking for ever: a DEALER whose handshake the server
    just refused may have no pipe for a moment (libzmq reconnects every
    100 ms), and an awaited send would then wait for a pipe that a refused
    peer never gets. Returns whether the frame was queued."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            await sock.send(data, zmq.NOBLOCK)  # zmq.asyncio: a finished future, Again if no pipe
            return True
        except zmq.Again:
            await asyncio.sleep(0.05)
    return False


async def hostile_peers(bus_port: int, controller_key: str) -> None:
    """Every kind of junk at the bus endpoint; returns when all was sent."""
    endpoint = f"tcp://127.0.0.1:{bus_port}"
    for size in (1, 64, 4096):
        with socket.create_connection(("127.0.0.1", bus_port), timeout=5) as s:
            s.sendall(os.urandom(size))
    ctx = zmq.asyncio.Context()
    try:
        plain = ctx.socket(zmq.DEALER)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(endpoint)
        await _send_bounded(plain, b"hello without curve")
        stranger_keys = new_keypair()
        curve = ctx.socket(zmq.DEALER)
        curve.setsockopt(zmq.LINGER, 0)
        curve.curve_serverkey = controller_key.encode()
        curve.curve_publickey = stranger_keys.public.encode()
        curve.curve_secretkey = stranger_keys.secret.encode()
        curve.routing_id = stranger_keys.public.encode()
        curve.connect(endpoint)
        for junk in (os.urandom(100), b"\xc1\xff\x00", b"\x81\xa1v\x01",  # not msgpack / bad envelope
                     b"\x85\xa1v\x01\xa4type\xaecluster.status\xa2id\x01\xa8reply_to\xc0\xa4body\x80"):
            await _send_bounded(curve, junk)
        await asyncio.sleep(0.5)
        plain.close()
        curve.close()
    finally:
        ctx.destroy(linger=0)
