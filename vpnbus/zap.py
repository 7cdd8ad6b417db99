"""ZAP for one bus context: pyzmq's authenticator logic, our own event-loop wiring.

libzmq asks the socket bound at ``inproc://zeromq.zap.01`` of the ROUTER's
context whether a CURVE client key may finish its handshake. pyzmq's
``Authenticator`` answers those requests (``handle_zap_message``, with our
:class:`~vpnbus.sockets.KeyPolicy` as credentials callback); this module only
decides how its REP socket is watched by the asyncio loop.

Why not pyzmq's ``AsyncioAuthenticator``: it waits with a zmq.asyncio Poller
that wraps the REP socket and registers the socket's file descriptor with the
loop; its ``stop()`` cancels that wait and closes the socket at once, but the
Poller unregisters the descriptor only later, from callbacks of the cancelled
future. A BusServer restarted in the same loop turn (a controller role switch
does exactly that) opens its new ZAP socket on the same, just freed, descriptor
number; the stale registration then hides it from epoll and the late cleanup
removes the new one. No ZAP request is ever read again: every member's
handshake hangs and the controller "does not answer" (issue 8).

Here the descriptor is registered in :meth:`start` and unregistered in
:meth:`stop`, synchronously and before the socket closes, so a stop followed
at once by a start in the same process always leaves a watched socket.
Invariant: at most one ZapAuthenticator per context (libzmq's fixed endpoint).
"""

from __future__ import annotations

import asyncio
import logging

import zmq
from zmq.auth.base import Authenticator

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class ZapAuthenticator(Authenticator):
    """ZAP handler of one context, driven by the running asyncio loop.

    ``start()`` must run inside the loop, before the ROUTER binds; ``stop()``
    is synchronous, idempotent, and leaves nothing registered with the loop.
    Raises zmq.ZMQError from ``start()`` if the ZAP endpoint is taken (a
    second authenticator on the same context).
    """

    def __init__(self, context: zmq.Context, log: logging.Logger = log) -> None:
        super().__init__(context, log=log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._readable = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        # A plain (blocking-API) socket: Authenticator replies with a direct
        # send, which a REP socket that has just received can always do.
        sock = self.context.socket(zmq.REP, socket_class=zmq.Socket)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except BaseException:
            sock.close(linger=0)
            raise
        self.zap_socket = sock
        self._loop = asyncio.get_running_loop()
        self._fd = sock.getsockopt(zmq.FD)
        self._loop.add_reader(self._fd, self._readable.set)
        self._task = asyncio.ensure_future(self._serve())

    async def _serve(self) -> None:
        # libzmq's FD only says "look at EVENTS again": drain every request
        # it reports before waiting for the next signal.
        sock = self.zap_socket
        while True:
            self._readable.clear()
            while int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                request = sock.recv_multipart(zmq.NOBLOCK)
                try:
                    await self.handle_zap_message(request)
                except Exception:  # a bug in a callback fails that handshake, never ZAP itself
                    self.log.exception("ZAP request failed; answering 500")
                    self._answer_failure(request)
            await self._readable.wait()

    def _answer_failure(self, request: list[bytes]) -> None:
        # REP must send before it may receive again; if the failure came after
        # the reply was sent, libzmq refuses this one (EFSM) and all is well.
        request_id = request[1] if len(request) > 1 else b""
        try:
            self.zap_socket.send_multipart([b"1.0", request_id, b"500", b"Internal error", b"", b""],
                                           zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def stop(self) -> None:
        if self._fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._fd = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.zap_socket is not None:
            self.zap_socket.close(linger=0)
        self.zap_socket = None  # type: ignore[assignment]
