"""The one place where bus sockets are made, authenticated and written to.

Controller: one ROUTER, CURVE server, bound. Member: one DEALER, CURVE client,
connected. Every option is set here so the two sides cannot drift:

- CURVE on both; the member pins the controller's public key
  (``curve_serverkey``), so a wrong controller fails the handshake.
- ZAP (zap.py: pyzmq's ``Authenticator`` with a credentials callback) decides
  which client keys may finish the handshake: a run-time changeable allow-list
  of member keys, or "any CURVE key" while the application authenticates new
  members itself (the join handshake). The authenticated key, z85 text, is the
  ZAP User-Id that libzmq attaches to every message; it is the peer's only
  identity on the bus.
- The member's routing id is a fresh random secret per socket
  (:func:`new_routing_id`): 16 bytes, first byte non-zero (libzmq reserves a
  leading zero for ids it makes itself). It travels only inside the CURVE
  handshake, so no one else can claim it; the server routes to a key by the
  routing id its latest authenticated frame came with (server.py).
  ``ROUTER_HANDOVER`` lets a member's reconnection on the same socket replace
  a stale pipe at once.
- ``ROUTER_MANDATORY``: a send to a peer that is gone fails (EHOSTUNREACH)
  instead of vanishing. ``IMMEDIATE`` on the DEALER: nothing is queued while
  the controller is away (messages sent then are lost by design; a member
  resends its whole state when it rejoins).
- ZMTP heartbeats (``HEARTBEAT_IVL/TIMEOUT/TTL``) close dead TCP connections;
  ``HANDSHAKE_IVL`` drops connections that never finish the handshake (random
  bytes from a stranger); ``MAXMSGSIZE`` disconnects a peer that sends an
  oversized frame before it is buffered; ``LINGER 0``: close never waits.
- Sends never block: :func:`send_nowait` uses NOBLOCK and maps every failure
  to a typed :class:`BusError`.

Why the routing id is secret: libzmq routes by the id the peer claims. Were it
guessable (say, the member's public key), a peer that passes ZAP ("any key"
mode lets anyone pass) could claim a member's id and, with handover, receive
what the controller sends to that member.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import ipaddress
import logging
import secrets
from collections.abc import Iterable

import zmq
import zmq.asyncio

from .envelope import MAX_FRAME_BYTES
from .keys import Keypair, is_key_text
from .zap import ZapAuthenticator

log = logging.getLogger(__name__)

ZAP_DOMAIN = "vpnbus"


class BusError(Exception):
    """A local send could not be done; the message was not sent.

    Raised by :func:`send_nowait` and the endpoints. Nothing was queued, so
    the caller may retry later or let its core's deadline handle it.
    """


class PeerUnreachable(BusError):
    """No connection to that peer right now (ROUTER_MANDATORY, EHOSTUNREACH)."""


class QueueFull(BusError):
    """The peer's send queue is at its high-water mark, or (DEALER) no
    connection to the controller is up; sending would block."""


class BusClosed(BusError):
    """The endpoint is closed; nothing more can be sent."""


@dataclasses.dataclass(frozen=True, slots=True)
class SocketOptions:
    """Transport numbers; defaults suit a LAN cluster with a 3 s liveness."""

    heartbeat_ivl_ms: int = 1000
    """ZMTP PING interval."""
    heartbeat_timeout_ms: int = 3000
    """Close the connection if no traffic for this long after a PING."""
    heartbeat_ttl_ms: int = 6000
    """Asks the remote to close if it hears nothing from us for this long."""
    handshake_ivl_ms: int = 5000
    """A connection that has not finished the CURVE handshake is dropped."""
    reconnect_ivl_ms: int = 500
    reconnect_ivl_max_ms: int = 3000
    sndhwm: int = 1000
    rcvhwm: int = 1000
    max_msg_bytes: int = MAX_FRAME_BYTES
    """Inbound frame cap; a peer exceeding it is disconnected by libzmq."""


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://host:port`` with IPv6 brackets where needed."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"tcp://[{host}]:{port}"
    except ValueError:
        pass  # a host name
    return f"tcp://{host}:{port}"


def _common_options(sock: zmq.Socket, options: SocketOptions, endpoint: str) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, options.sndhwm)
    sock.setsockopt(zmq.RCVHWM, options.rcvhwm)
    # libzmq counts the whole message; leave room for the routing frame.
    sock.setsockopt(zmq.MAXMSGSIZE, options.max_msg_bytes + 256)
    sock.setsockopt(zmq.HEARTBEAT_IVL, options.heartbeat_ivl_ms)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, options.heartbeat_timeout_ms)
    sock.setsockopt(zmq.HEARTBEAT_TTL, options.heartbeat_ttl_ms)
    sock.setsockopt(zmq.HANDSHAKE_IVL, options.handshake_ivl_ms)
    sock.setsockopt(zmq.RECONNECT_IVL, options.reconnect_ivl_ms)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, options.reconnect_ivl_max_ms)
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)


def make_router(ctx: zmq.asyncio.Context, keys: Keypair, endpoint: str,
                options: SocketOptions = SocketOptions()) -> zmq.asyncio.Socket:
    """A bound CURVE-server ROUTER. Start the ZAP authenticator on ``ctx`` first.

    ``endpoint`` may use port 0 for a free port; read the real one
    from ``sock.getsockopt_string(zmq.LAST_ENDPOINT)``. Raises zmq.ZMQError if
    the bind fails (the socket is closed then).
    """
    sock = ctx.socket(zmq.ROUTER)
    try:
        _common_options(sock, options, endpoint)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
        sock.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        sock.bind(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def new_routing_id() -> bytes:
    """A secret routing id: 16 random bytes, never starting with zero."""
    return bytes([secrets.randbelow(255) + 1]) + secrets.token_bytes(15)


def make_dealer(ctx: zmq.asyncio.Context, keys: Keypair, server_public: str,
                endpoint: str, options: SocketOptions = SocketOptions()) -> zmq.asyncio.Socket:
    """A CURVE-client DEALER connecting to ``endpoint``, pinned to ``server_public``.

    Raises ValueError for a malformed key, zmq.ZMQError for a bad endpoint.
    """
    if not is_key_text(server_public):
        raise ValueError("server_public is not a z85 CURVE key")
    sock = ctx.socket(zmq.DEALER)
    try:
        _common_options(sock, options, endpoint)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.ROUTING_ID, new_routing_id())
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def send_nowait(sock: zmq.asyncio.Socket, frames: list[bytes]) -> None:
    """Send a multipart message without ever waiting.

    Raises QueueFull (EAGAIN), PeerUnreachable (EHOSTUNREACH), BusClosed, or
    BusError for any other libzmq failure. On error nothing was sent.
    """
    if sock.closed:
        raise BusClosed("socket closed")
    # zmq.asyncio tries a NOBLOCK send at once and returns a finished future
    # (we never leave blocking sends pending, so it never defers).
    fut = sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=True)
    assert isinstance(fut, asyncio.Future)  # typed Awaitable; zmq.asyncio returns a Future
    exc = fut.exception() if fut.done() else None
    if not fut.done():  # cannot happen with NOBLOCK; never leave it dangling
        fut.cancel()
        raise QueueFull("send deferred")
    if exc is None:
        return
    if isinstance(exc, zmq.Again):
        raise QueueFull(str(exc))
    if isinstance(exc, zmq.ZMQError):
        if exc.errno == errno.EHOSTUNREACH:
            raise PeerUnreachable(str(exc))
        if exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
            raise BusClosed(str(exc))
        raise BusError(str(exc))
    raise exc


class KeyPolicy:
    """Which CURVE client keys ZAP lets finish the handshake.

    ``allow_any`` True: any valid CURVE key (the application then admits or
    refuses the peer, e.g. by the join handshake). False: only keys in the
    allow-list. Both can change at run time; the change applies to the next
    handshake (established connections are not cut; the application drops a
    revoked member itself). Denials are counted per key.
    """

    def __init__(self, allowed: Iterable[str] = (), *, allow_any: bool = False) -> None:
        self.allow_any = allow_any
        self._allowed: set[str] = set()
        self.denied: collections.Counter[str] = collections.Counter()
        self.replace(allowed)

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self._allowed)

    def allow(self, public: str) -> None:
        """Add a z85 key. ValueError if malformed."""
        if not is_key_text(public):
            raise ValueError("not a z85 CURVE key")
        self._allowed.add(public)

    def revoke(self, public: str) -> None:
        self._allowed.discard(public)

    def replace(self, keys: Iterable[str]) -> None:
        """Make ``keys`` the whole allow-list. ValueError if one is malformed."""
        keys = list(keys)
        for k in keys:
            if not is_key_text(k):
                raise ValueError(f"not a z85 CURVE key: {k!r}")
        self._allowed = set(keys)

    def is_allowed(self, public: str) -> bool:
        return self.allow_any or public in self._allowed

    def callback(self, domain: str, z85_key: bytes) -> bool:
        """pyzmq's credentials-provider hook (configure_curve_callback)."""
        key = z85_key.decode("ascii", "replace")
        if self.is_allowed(key):
            return True
        if len(self.denied) < 4096 or key in self.denied:  # bounded memory
            self.denied[key] += 1
        else:
            self.denied["*"] += 1
        return False


def start_authenticator(ctx: zmq.asyncio.Context, policy: KeyPolicy) -> ZapAuthenticator:
    """Start ZAP on ``ctx`` (one per context) answering from ``policy``.

    Must run inside the event loop, before the ROUTER binds. Stop it with
    ``.stop()`` before terminating the context; a new one may start at once
    after (zap.py says why that needs care).
    """
    auth = ZapAuthenticator(ctx, log=log.getChild("zap"))
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=policy)
    auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=policy)
    return auth
