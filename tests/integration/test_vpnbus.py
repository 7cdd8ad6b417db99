"""vpnbus over real sockets on 127.0.0.1 (random free ports): CURVE, ZAP,
request/response, heartbeats and silence, and hostile peers that must not
disturb a good member."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket

import pytest
import zmq
import zmq.asyncio

from vpnbus.client import BusClient
from vpnbus.endpoint import BusConfig, Heartbeat, RemoteError, RequestFailed, RequestTimeout
from vpnbus.envelope import Envelope, Reason, decode, encode, message
from vpnbus.keys import new_keypair
from vpnbus.server import BusServer
from vpnbus.sockets import (KeyPolicy, PeerUnreachable, QueueFull, SocketOptions, make_dealer,
                            send_nowait, tcp_endpoint)

pytestmark = pytest.mark.timeout(60)

FAST = BusConfig(heartbeat_interval_s=0.1, silence_timeout_s=0.6, request_timeout_s=3.0,
                 socket=SocketOptions(heartbeat_ivl_ms=200, heartbeat_timeout_ms=1000,
                                      heartbeat_ttl_ms=2000, handshake_ivl_ms=1000,
                                      reconnect_ivl_ms=50, reconnect_ivl_max_ms=200,
                                      max_msg_bytes=64 * 1024),
                 max_frame_bytes=64 * 1024)
# Tests that assert no silence while only heartbeats flow: 15 heartbeat
# intervals of slack, so a busy machine cannot fake a silence.
QUIET = dataclasses.replace(FAST, silence_timeout_s=1.5)


@message("itest.echo")
class Echo:
    text: str


@message("itest.echoed")
class Echoed:
    text: str
    by: str


@message("itest.note")
class Note:
    n: int


@message("itest.fail")
class Fail:
    code: int


@message("itest.ignore")
class Ignore:
    pass


@message("itest.crash")
class Crash:
    unsendable_reply: bool


class App:
    """A handler that echoes, records notes, fails on request, ignores."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.notes: list[tuple[str, int]] = []
        self.events: list = []

    async def __call__(self, peer, msg):
        if isinstance(msg, Echo):
            await asyncio.sleep(0)
            return Echoed(text=msg.text, by=self.name)
        if isinstance(msg, Note):
            self.notes.append((peer, msg.n))
            return None
        if isinstance(msg, Fail):
            raise RequestFailed(msg.code, "asked to fail")
        if isinstance(msg, Crash):
            if msg.unsendable_reply:
                return object()
            raise RuntimeError("handler bug")
        return None


async def until(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms, at most ``timeout_s``."""
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def start_pair(allow_any=False, config=FAST):
    server_keys, member_keys = new_keypair(), new_keypair()
    controller, member = App("controller"), App("member")
    policy = KeyPolicy([] if allow_any else [member_keys.public], allow_any=allow_any)
    server = await BusServer.start("tcp://127.0.0.1:0", server_keys, controller, policy=policy,
                                   on_event=controller.events.append, config=config)
    client = await BusClient.start(server.endpoint, member_keys, server_keys.public, member,
                                   on_event=member.events.append, config=config)
    await until(lambda: member_keys.public in server.peers and client.connected,
                what="member to be seen")
    return server, client, controller, member


def test_request_response_both_ways_with_allowed_key():
    async def main():
        server, client, controller, member = await start_pair()
        try:
            mk = client.keys.public
            assert await client.request(Echo(text="hi")) == Echoed(text="hi", by="controller")
            assert await server.request(mk, Echo(text="yo")) == Echoed(text="yo", by="member")
            client.notify(Note(n=1))
            server.notify(mk, Note(n=2))
            await until(lambda: controller.notes and member.notes, what="notes")
            assert controller.notes == [(mk, 1)]
            assert member.notes == [(server.keys.public, 2)]
            with pytest.raises(RemoteError) as info:
                await client.request(Fail(code=42))
            assert info.value.code == 42
            with pytest.raises(RequestTimeout):
                await client.request(Ignore(), timeout_s=0.3)
            for unsendable in (False, True):   # handler bugs: logged, counted, no reply
                with pytest.raises(RequestTimeout):
                    await client.request(Crash(unsendable_reply=unsendable), timeout_s=0.3)
            assert server.counters["handler_errors"] == 2
            with pytest.raises(PeerUnreachable):
                await server.request(new_keypair().public, Echo(text="nobody"))
            results = await asyncio.gather(*(client.request(Echo(text=str(i)))
                                             for i in range(50)))
            assert [r.text for r in results] == [str(i) for i in range(50)]
            assert server.stats()["requests"]["pending"] == 0
            assert server.peer_address(mk) == "127.0.0.1"
            assert client.stats()["requests"]["timeouts"] == 3
            assert server.dropped() == 0 and client.dropped() == 0
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())


def test_heartbeats_keep_quiet_link_alive_then_a_closed_connection_is_detected_at_once():
    async def main():
        server, client, controller, member = await start_pair(config=QUIET)
        mk, sk = client.keys.public, server.keys.public
        try:
            # Quiet for two silence timeouts: only heartbeats flow, each side
            # receives them (waited for as counts, with a generous deadline)
            # and neither side takes the other for silent.
            loop = asyncio.get_running_loop()
            began = loop.time()
            heard = (server.stats()["counters"]["messages_in"], client.stats()["counters"]["messages_in"])
            beats = int(2 * QUIET.silence_timeout_s / QUIET.heartbeat_interval_s)
            await until(lambda: loop.time() - began >= 2 * QUIET.silence_timeout_s
                        and server.stats()["counters"]["messages_in"] - heard[0] >= beats
                        and client.stats()["counters"]["messages_in"] - heard[1] >= beats,
                        timeout_s=30.0, what="two silence timeouts' worth of heartbeats both ways")
            assert not [e for e in controller.events + member.events
                        if type(e).__name__ == "PeerSilent"]
            assert mk in server.peers and client.connected

            # The member vanishes without a goodbye: its connection closes,
            # and the server finds that out without waiting for its silence
            # (a frozen member, whose connection stays open, is the vpnd
            # tests' SIGSTOP case).
            await client.close()
            def ends() -> list[str]:
                return [type(e).__name__ for e in controller.events
                        if getattr(e, "peer", None) == mk and type(e).__name__ in ("PeerGone", "PeerSilent")]
            await until(ends, what="the member's end on the controller")
            assert ends() == ["PeerGone"]
            assert mk not in server.peers and server.peer_address(mk) is None

            # The controller vanishes; a new member notices, then sees it return.
            member2 = App("member2")
            client = await BusClient.start(server.endpoint, new_keypair(), sk, member2,
                                           on_event=member2.events.append, config=QUIET)
            server.policy.allow(client.keys.public)
            await until(lambda: client.connected, what="second member up")
            endpoint, policy, keys = server.endpoint, server.policy, server.keys
            await server.close()
            await until(lambda: not client.connected, what="member to see silence")
            server = await BusServer.start(endpoint, keys, controller, policy=policy,
                                           config=QUIET)
            await until(lambda: client.connected, what="member to see the controller again")
            kinds = [type(e).__name__ for e in member2.events]
            assert kinds == ["PeerSeen", "PeerSilent", "PeerSeen"]
            assert (await client.request(Echo(text="back"))).text == "back"
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())


async def raw_tcp_garbage(endpoint: str) -> None:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(os.urandom(4096))
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(1024), timeout=2.0)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()


def test_hostile_peers_leave_the_server_serving_a_good_member():
    async def main():
        server, client, controller, member = await start_pair()
        ctx = zmq.asyncio.Context()
        try:
            # 1. Random bytes on a raw TCP connection.
            await raw_tcp_garbage(server.endpoint)
            # 2. A plain (NULL security) ZeroMQ DEALER.
            plain = ctx.socket(zmq.DEALER)
            plain.setsockopt(zmq.LINGER, 0)
            plain.connect(server.endpoint)
            await plain.send(b"\x81\xa1v\x01")
            # 3. A CURVE member with a key the allow-list does not hold.
            stranger = await BusClient.start(server.endpoint, new_keypair(), server.keys.public,
                                             App("stranger"), config=FAST)
            # 4. An allowed peer sending malformed frames.
            bad_keys = new_keypair()
            server.policy.allow(bad_keys.public)
            bad = make_dealer(ctx, bad_keys, server.keys.public, server.endpoint, FAST.socket)
            garbage = [b"\xc1", b"\x92\x01\x02", b"\x85" + os.urandom(30),
                       b"x" * (FAST.max_frame_bytes + 10),      # refused by decode
                       b"y" * (FAST.max_frame_bytes * 2)]       # libzmq cuts the peer
            for frame in garbage:
                await until(lambda: _try_send(bad, frame), what="bad peer connected")

            await until(lambda: server.dropped(Reason.NOT_MSGPACK) >= 1
                        and server.dropped(Reason.BAD_ENVELOPE) >= 1, what="drops counted")
            await until(lambda: server.policy.denied[stranger.keys.public] >= 1,
                        what="stranger denied by ZAP")
            # libzmq refuses the NULL-security peer in the handshake, and
            # disconnects the raw garbage (the good member never disconnects).
            await until(lambda: server.counters["handshake_failed_protocol"]
                        + server.counters["handshake_failed_no_detail"] >= 1,
                        what="plain DEALER refused")
            await until(lambda: server.counters["disconnected"] >= 2,
                        what="hostile connections closed")
            with pytest.raises(QueueFull):
                stranger.notify(Note(n=1))      # never admitted: nothing queued
            assert server.counters["handshake_failed_auth"] >= 1

            # The good member is still served, and nothing was misattributed.
            assert (await client.request(Echo(text="still here"))).by == "controller"
            dropped = server.stats()["dropped"]
            assert set(dropped) == {bad_keys.public}
            assert client.keys.public in server.peers
            assert controller.notes == [] and stranger.keys.public not in server.peers
            await stranger.close()
        finally:
            ctx.destroy(linger=0)
            await client.close()
            await server.close()

    asyncio.run(main())


def _try_send(sock, frame: bytes) -> bool:
    try:
        send_nowait(sock, [frame])
    except QueueFull:
        return False  # not connected yet (IMMEDIATE)
    return True


def test_open_mode_admits_any_key_and_can_be_closed_at_run_time():
    async def main():
        server, client, controller, member = await start_pair(allow_any=True)
        try:
            assert (await client.request(Echo(text="joining"))).by == "controller"
            server.policy.allow_any = False
            late = await BusClient.start(server.endpoint, new_keypair(), server.keys.public,
                                         App("late"), config=FAST)
            await until(lambda: server.policy.denied[late.keys.public] >= 1, what="denial")
            assert not late.connected
            await late.close()
            # The established connection is the application's to drop.
            assert (await client.request(Echo(text="still"))).by == "controller"
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())


def test_a_peer_claiming_a_members_routing_id_receives_nothing_meant_for_it():
    async def main():
        server, client, controller, member = await start_pair(allow_any=True)
        ctx = zmq.asyncio.Context()
        try:
            mk = client.keys.public
            # The thief passes ZAP ("any key" mode) and claims what an old
            # scheme would have used as the member's id: its public key.
            thief = make_dealer(ctx, new_keypair(), server.keys.public, server.endpoint, FAST.socket)
            thief.disconnect(server.endpoint)
            thief.setsockopt(zmq.ROUTING_ID, mk.encode("ascii"))
            thief.connect(server.endpoint)
            frame = encode(Envelope(Note(n=9), 1))
            await until(lambda: _try_send(thief, frame), what="thief connected")
            await until(lambda: any(n == 9 for _, n in controller.notes), what="thief heard")
            for i in range(5):
                server.notify(mk, Note(n=100 + i))
            assert (await server.request(mk, Echo(text="mine"))).by == "member"
            await until(lambda: len(member.notes) == 5, what="notes to the member")
            assert [n for _, n in member.notes] == [100, 101, 102, 103, 104]
            got = []
            # Until 200 ms pass quietly: the server forgets the thief once it
            # has been silent for the silence timeout, so its heartbeats stop.
            for _ in range(500):
                if not await thief.poll(200):
                    break
                got.append(decode((await thief.recv_multipart())[-1]).message)
            else:
                raise AssertionError("the thief kept receiving")
            # only the thief's own heartbeats: nothing meant for the member reached it
            assert not [m for m in got if not isinstance(m, Heartbeat)], got
        finally:
            ctx.destroy(linger=0)
            await client.close()
            await server.close()

    asyncio.run(main())


def test_bind_failure_is_a_zmq_error_and_leaves_nothing_open():
    async def main():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(zmq.ZMQError):
                await BusServer.start(f"tcp://127.0.0.1:{port}", new_keypair(), App("x"))

    asyncio.run(main())


def test_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")

    async def main():
        server_keys, member_keys = new_keypair(), new_keypair()
        server = await BusServer.start(tcp_endpoint("::1", 0), server_keys, App("c"),
                                       policy=KeyPolicy([member_keys.public]), config=FAST)
        client = await BusClient.start(server.endpoint, member_keys, server_keys.public,
                                       App("m"), config=FAST)
        try:
            await until(lambda: client.connected, what="IPv6 member up")
            assert (await client.request(Echo(text="v6"))).text == "v6"
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())


def test_server_restarted_in_the_same_loop_turn_on_the_same_port_still_authenticates():
    """A controller role switch closes its BusServer and starts a new one on the
    same port with no await in between (issue 8). Each new server must answer
    ZAP, so a member that stays connected (and a fresh one) can talk again."""
    async def main():
        server_keys, member_keys = new_keypair(), new_keypair()
        policy = KeyPolicy([member_keys.public])
        server = await BusServer.start("tcp://127.0.0.1:0", server_keys, App("c0"),
                                       policy=policy, config=FAST)
        endpoint = server.endpoint
        client = await BusClient.start(endpoint, member_keys, server_keys.public, App("m"),
                                       config=FAST)
        try:
            for restart in range(1, 5):
                await until(lambda: client.connected and member_keys.public in server.peers,
                            what=f"member seen before restart {restart}")
                await server.close()
                server = await BusServer.start(endpoint, server_keys, App(f"c{restart}"),
                                               policy=policy, config=FAST)
                await until(lambda: member_keys.public in server.peers,
                            what=f"member authenticated after restart {restart}")
                assert await client.request(Echo(text=str(restart)), timeout_s=3.0) == \
                    Echoed(text=str(restart), by=f"c{restart}")
                fresh = await BusClient.start(endpoint, new_keypair(), server_keys.public,
                                              App("fresh"), config=FAST)
                try:  # an unknown key: ZAP must answer (deny), not leave it hanging
                    await until(lambda: server.counters["handshake_failed_auth"] >= 1,
                                what=f"ZAP denial after restart {restart}")
                finally:
                    await fresh.close()
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())
