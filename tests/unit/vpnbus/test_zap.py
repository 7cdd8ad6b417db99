"""ZapAuthenticator answers ZAP requests after any number of stop/start
cycles done in the same loop turn (issue 8: pyzmq's AsyncioAuthenticator
went deaf when a new one reused the old one's file descriptor)."""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio
from zmq.utils import z85

from vpnbus.keys import new_keypair
from vpnbus.sockets import KeyPolicy, start_authenticator
from vpnbus.zap import ZAP_ENDPOINT

ALLOWED, OTHER = new_keypair().public, new_keypair().public


async def ask(ctx: zmq.asyncio.Context, key: str, request_id: bytes) -> tuple[bytes, bytes]:
    """One ZAP request as libzmq sends it; returns (status code, user id)."""
    req = ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(ZAP_ENDPOINT)
        await req.send_multipart([b"1.0", request_id, b"vpnbus", b"127.0.0.1", b"", b"CURVE",
                                  z85.decode(key.encode("ascii"))])
        reply = await asyncio.wait_for(req.recv_multipart(), 5.0)
    finally:
        req.close(linger=0)
    assert reply[:2] == [b"1.0", request_id]
    return reply[2], reply[4]


def test_restarts_in_the_same_loop_turn_keep_answering():
    async def main():
        policy = KeyPolicy([ALLOWED])
        ctx = zmq.asyncio.Context()
        auth = start_authenticator(ctx, policy)
        try:
            for cycle in range(5):
                assert await ask(ctx, ALLOWED, b"%d" % cycle) == (b"200", ALLOWED.encode())
                assert (await ask(ctx, OTHER, b"x"))[0] == b"400"
                # What BusServer.close + BusServer.start do, with no await between.
                auth.stop()
                auth.stop()  # idempotent
                ctx.destroy(linger=0)
                ctx = zmq.asyncio.Context()
                auth = start_authenticator(ctx, policy)
                # Handshakes come later, once the loop has run the old
                # authenticator's leftovers (a request queued before the first
                # wait would be answered even by a deaf one).
                await asyncio.sleep(0.05)
        finally:
            auth.stop()
            ctx.destroy(linger=0)

    asyncio.run(main())


def test_a_second_authenticator_on_one_context_is_refused_and_leaves_the_first_serving():
    async def main():
        ctx = zmq.asyncio.Context()
        auth = start_authenticator(ctx, KeyPolicy(allow_any=True))
        try:
            try:
                start_authenticator(ctx, KeyPolicy())
            except zmq.ZMQError as exc:
                assert exc.errno == zmq.EADDRINUSE
            else:
                raise AssertionError("second ZAP handler bound")
            assert (await ask(ctx, OTHER, b"1"))[0] == b"200"
        finally:
            auth.stop()
            ctx.destroy(linger=0)

    asyncio.run(main())


class FailsOnce(KeyPolicy):
    def __init__(self) -> None:
        super().__init__(allow_any=True)
        self.failed = False

    def callback(self, domain: str, z85_key: bytes) -> bool:
        if not self.failed:
            self.failed = True
            raise RuntimeError("policy bug")
        return super().callback(domain, z85_key)


def test_a_failing_policy_fails_one_handshake_and_zap_keeps_serving():
    async def main():
        ctx = zmq.asyncio.Context()
        auth = start_authenticator(ctx, FailsOnce())
        try:
            assert (await ask(ctx, ALLOWED, b"1"))[0] == b"500"
            assert (await ask(ctx, ALLOWED, b"2"))[0] == b"200"
        finally:
            auth.stop()
            ctx.destroy(linger=0)

    asyncio.run(main())
